// The pull-request preview, pure: the head's manifests planned against the base's, per gateway and
// category, the exact rule diff, and its Markdown (cut to a limit, escaped) and text renderings.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import { planGateways } from '../../dataplane/gateway-plan.ts';
import { ruleDiff } from '../../dataplane/plan-text.ts';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { escapeMarkdown, renderMarkdown } from '../../preview/markdown.ts';
import { previewChanges, type GatewayPreview, type Preview } from '../../preview/preview.ts';
import { renderText } from '../../preview/text.ts';
import {
  gatewayInOwnVpc,
  push,
  seedObjects,
  set,
  subnet,
  toFiles,
  unset,
  type SeedObjects,
} from '../helpers/manifests.ts';

const REFS = { base: 'main', head: 'pr' };
const LINK = (path: string, line: number) => `https://github.com/o/r/blob/${'b'.repeat(40)}/${path}#L${line}`;

type Change = (s: SeedObjects) => void;
const none: Change = () => undefined;

/** The seed (changed by `both`) as base, and that changed by `change` as head. */
async function manifests(change: Change, both: Change = none): Promise<{ base: ManifestFile[]; head: ManifestFile[] }> {
  const base = await seedObjects();
  both(base);
  const head = await seedObjects();
  both(head);
  change(head);
  return { base: toFiles(base), head: toFiles(head) };
}

function previewOf(files: { base: ManifestFile[]; head: ManifestFile[] }): Preview {
  return previewChanges(validateManifests(files.base), validateManifests(files.head), REFS);
}

/** A gateway's preview, its entries as text only (a port forward's fields are for ranges: preview-ranges.test.ts). */
const gateway = (p: Preview, name = 'ngw'): GatewayPreview => {
  const g = p.gateways.find((x) => x.name === name);
  assert.ok(g, `gateway ${name} is in the preview`);
  const changes = Object.fromEntries(
    Object.entries(g.changes).map(([c, entries]) => [c, entries.map(({ forward: _, ...e }) => e)]),
  ) as GatewayPreview['changes'];
  return { ...g, changes };
};

/** The Markdown's structure holds: every <details> closed, every code block closed, every table row as wide as its header. */
function checkMarkdown(md: string): void {
  const html = outsideCode(md);
  assert.equal(
    html.match(/<details>/g)?.length ?? 0,
    html.match(/<\/details>/g)?.length ?? 0,
    'every <details> is closed',
  );
  let fence: number | undefined;
  let width: number | undefined;
  for (const line of md.split('\n')) {
    if (fence !== undefined) {
      const close = /^ {0,3}(`{3,})\s*$/.exec(line);
      if (close && close[1]!.length >= fence) fence = undefined;
      continue;
    }
    const open = /^ {0,3}(`{3,})/.exec(line);
    if (open) {
      fence = open[1]!.length;
      width = undefined;
      continue;
    }
    if (!line.startsWith('|')) {
      width = undefined;
      continue;
    }
    // GFM splits a row at every "|" not escaped by a backslash, inside code spans too
    let pipes = 0;
    for (let i = 0; i < line.length; i++) {
      if (line[i] === '\\') i++;
      else if (line[i] === '|') pipes++;
    }
    if (width === undefined) width = pipes;
    else assert.equal(pipes, width, `a table row keeps its columns: ${line}`);
  }
  assert.equal(fence, undefined, 'every code block is closed');
}

/** The Markdown outside code blocks and code spans: what GitHub would interpret. */
function outsideCode(md: string): string {
  const kept: string[] = [];
  let fence: number | undefined;
  for (const line of md.split('\n')) {
    const m = /^ {0,3}(`{3,})/.exec(line);
    if (fence === undefined && m) fence = m[1]!.length;
    else if (fence !== undefined && m && m[1]!.length >= fence && /^ {0,3}`+\s*$/.test(line)) fence = undefined;
    else if (fence === undefined) kept.push(line);
  }
  return kept.join('\n').replace(/(`+)(?!`)[\s\S]*?[^`]\1(?!`)/g, '');
}

describe('preview: what changes per gateway and category', () => {
  it('EIPs, floating IPs, port forwards, SNATs and routes added and changed; a moved port forward target is one change', async () => {
    const p = previewOf(
      await manifests((s) => {
        push(s.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
        set(s.gateway, 'spec.eips.0.eipCIDR', '192.168.0.111/16');
        set(s.gateway, 'spec.floatingIpRules.0.internalIp', '10.0.1.6');
        set(s.gateway, 'spec.dnatRules.0.internalIp', '10.0.1.11');
        push(s.gateway, 'spec.dnatRules', {
          eip: '192.168.0.112',
          externalPort: 8080,
          protocol: 'udp',
          internalIp: '10.0.1.10',
          internalPort: 53,
        });
        set(s.gateway, 'spec.snatRules.0.eip', '192.168.0.113');
        push(s.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.1.0/25' });
        s.extra.push(subnet('sn2', 'test-vpc-1', '10.0.2.0/24', '10.0.2.1'));
      }),
    );
    const g = gateway(p);
    assert.equal(g.action, 'update');
    assert.deepEqual(g.changes, {
      eips: [
        {
          change: 'changed',
          before: '192.168.0.111/24 via 192.168.0.254',
          after: '192.168.0.111/16 via 192.168.0.254',
        },
        { change: 'added', after: '192.168.0.113/24 via 192.168.0.254' },
      ],
      floatingIps: [{ change: 'changed', before: '192.168.0.111 -> 10.0.1.5', after: '192.168.0.111 -> 10.0.1.6' }],
      portForwards: [
        {
          change: 'changed',
          before: 'tcp 192.168.0.112:8888 -> 10.0.1.10:80',
          after: 'tcp 192.168.0.112:8888 -> 10.0.1.11:80',
        },
        { change: 'added', after: 'udp 192.168.0.112:8080 -> 10.0.1.10:53' },
      ],
      snats: [
        { change: 'changed', before: '10.0.1.0/24 -> 192.168.0.112', after: '10.0.1.0/24 -> 192.168.0.113' },
        { change: 'added', after: '10.0.1.0/25 -> 192.168.0.112' },
      ],
      routes: [{ change: 'added', after: '10.0.2.0/24 via 10.0.1.1 dev eth0' }],
    });
    assert.deepEqual(p.totals.changes.portForwards, { added: 1, changed: 1, removed: 0 });
    assert.deepEqual(g.recreate, [], 'rules and addresses change in place');

    const md = renderMarkdown(p);
    checkMarkdown(md);
    assert.match(
      md,
      /^\| gateway `ngw` \| update \| \+1 ~1 -0 \| \+0 ~1 -0 \| \+1 ~1 -0 \| \+1 ~1 -0 \| \+1 ~0 -0 \|$/m,
    );
    assert.match(
      md,
      /^\| port forward \| changed \| `tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80` \| `tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.11:80` \| open connections through the old mapping are cut \|$/m,
    );
    assert.match(
      renderText(p),
      /^ {2}~ port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80 => tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.11:80 {2}\(open connections through the old mapping are cut\)$/m,
    );
  });

  it('removals: a floating IP with its EIP, a port forward, an SNAT, a subnet route', async () => {
    const p = previewOf(
      await manifests(
        (s) => {
          unset(s.gateway, 'spec.floatingIpRules.0');
          unset(s.gateway, 'spec.eips.0');
          unset(s.gateway, 'spec.dnatRules.0');
          unset(s.gateway, 'spec.snatRules.0');
          s.extra.pop();
        },
        (s) => s.extra.push(subnet('sn2', 'test-vpc-1', '10.0.2.0/24', '10.0.2.1')),
      ),
    );
    assert.deepEqual(gateway(p).changes, {
      eips: [{ change: 'removed', before: '192.168.0.111/24 via 192.168.0.254' }],
      floatingIps: [{ change: 'removed', before: '192.168.0.111 -> 10.0.1.5' }],
      portForwards: [{ change: 'removed', before: 'tcp 192.168.0.112:8888 -> 10.0.1.10:80' }],
      snats: [{ change: 'removed', before: '10.0.1.0/24 -> 192.168.0.112' }],
      routes: [{ change: 'removed', before: '10.0.2.0/24 via 10.0.1.1 dev eth0' }],
    });
    assert.match(
      renderMarkdown(p),
      /^\| SNAT \| removed \| `10\.0\.1\.0\/24 -> 192\.168\.0\.112` \| {2}\| sources in the CIDR lose this way out \(a shorter prefix takes them, if any\); open flows are cut \|$/m,
    );
  });

  it('the rule diff is exactly what ruleDiff says of planGateways, the base compiled as current', async () => {
    const files = await manifests((s) => {
      set(s.gateway, 'spec.dnatRules.0.externalPort', 8080);
      push(s.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.1.0/26' });
    });
    const p = previewOf(files);
    const base = validateManifests(files.base).desired.gateways.get('ngw')!;
    const head = validateManifests(files.head).desired.gateways.get('ngw')!;
    const [plan] = planGateways(new Map([['ngw', compileGateway(base)]]), new Map([['ngw', head]]));
    const expected = ruleDiff(plan!.changes);
    assert.ok(expected.length >= 4, 'a port forward and an SNAT with its hairpin make several lines');
    assert.deepEqual(gateway(p).ruleDiff, expected);

    const md = renderMarkdown(p);
    const block =
      /<details><summary>Rule diff of gateway <code>ngw<\/code> \((\d+) lines\)<\/summary>\n\n```diff\n([\s\S]*?)\n```\n\n<\/details>/.exec(
        md,
      );
    assert.ok(block, md);
    assert.equal(Number(block[1]), expected.length);
    assert.deepEqual(block[2]!.split('\n'), expected);
    const text = renderText(p);
    for (const line of expected) assert.ok(text.includes(`\n    ${line}\n`) || text.endsWith(`\n    ${line}`), line);
  });

  it('a new gateway is created, a removed one deleted, an untouched one unchanged', async () => {
    const p = previewOf(
      await manifests(
        (s) => {
          s.extra.splice(
            0,
            3,
            ...gatewayInOwnVpc({ gateway: 'gw3', vpc: 'vpc3', subnet: 'sn3', n: 3, eip: '192.168.0.130' }),
          );
        },
        (s) =>
          s.extra.push(...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn2', n: 2, eip: '192.168.0.120' })),
      ),
    );
    assert.deepEqual(
      p.gateways.map((g) => [g.name, g.action]),
      [
        ['gw2', 'delete'],
        ['gw3', 'create'],
        ['ngw', 'unchanged'],
      ],
    );
    assert.deepEqual(gateway(p, 'gw2').changes.portForwards, [
      { change: 'removed', before: 'tcp 192.168.0.120:8000 -> 10.0.2.10:80' },
    ]);
    assert.deepEqual(gateway(p, 'gw3').changes.eips, [
      { change: 'added', after: '192.168.0.130/24 via 192.168.0.254' },
    ]);
    assert.ok(gateway(p, 'gw2').ruleDiff.includes('- ip addr 192.168.0.120/24 dev net1'));
    assert.deepEqual(gateway(p, 'ngw').ruleDiff, []);
    assert.deepEqual(p.totals.actions, { create: 1, update: 0, delete: 1, invalid: 0, unchanged: 1 });
    // the VPCs came and went with them, without static-route changes of their own
    assert.deepEqual(
      p.vpcs.map((v) => [v.name, v.action]),
      [
        ['test-vpc-1', 'unchanged'],
        ['vpc2', 'delete'],
        ['vpc3', 'create'],
      ],
    );

    const md = renderMarkdown(p);
    checkMarkdown(md);
    assert.match(md, /^\| gateway `ngw` \| unchanged \|/m);
    assert.match(md, /^\| gateway `gw2` \| delete \| \+0 ~0 -1 \| \+0 ~0 -0 \| \+0 ~0 -1 \|/m);
    assert.doesNotMatch(md, /#### gateway `ngw`/, 'an unchanged gateway has no detail');
    assert.ok(md.includes('3 gateways: 1 to create, 1 to delete, 1 unchanged.'));
  });

  it("a VPC's static routes appear, keyed by CIDR and policy", async () => {
    const p = previewOf(
      await manifests((s) => {
        push(s.vpc, 'spec.staticRoutes', { cidr: '172.16.0.0/16', nextHopIP: '10.0.1.254', policy: 'policyDst' });
        set(s.vpc, 'spec.staticRoutes.0.nextHopIP', '10.0.1.253');
      }),
    );
    const [vpc] = p.vpcs;
    assert.deepEqual(vpc, {
      name: 'test-vpc-1',
      action: 'update',
      issues: [],
      staticRoutes: [
        {
          change: 'changed',
          before: '0.0.0.0/0 via 10.0.1.254 (policyDst)',
          after: '0.0.0.0/0 via 10.0.1.253 (policyDst)',
        },
        { change: 'added', after: '172.16.0.0/16 via 10.0.1.254 (policyDst)' },
      ],
    });
    assert.equal(gateway(p).action, 'unchanged', 'the gateway itself does not change');
    const md = renderMarkdown(p);
    assert.match(md, /^\| VPC `test-vpc-1` \| update \| \| \| \| \| \+1 ~1 -0 \(static\) \|$/m);
    assert.match(
      md,
      /^\| static route \| added \| {2}\| `172\.16\.0\.0\/16 via 10\.0\.1\.254 \(policyDst\)` \| {2}\|$/m,
    );
    assert.match(renderText(p), /^ {2}\+ static route 172\.16\.0\.0\/16 via 10\.0\.1\.254 \(policyDst\)$/m);
  });

  it('a new lanIp recreates the gateway: an update even though no rule changes', async () => {
    const p = previewOf(
      await manifests(
        (s) => set(s.gateway, 'spec.lanIp', '10.0.1.253'),
        (s) => set(s.vpc, 'spec.staticRoutes', []),
      ),
    );
    const g = gateway(p);
    assert.equal(g.action, 'update');
    assert.deepEqual(g.ruleDiff, []);
    assert.deepEqual(g.recreate, ['lanIp 10.0.1.254 -> 10.0.1.253']);
    assert.match(
      renderText(p),
      /gateway ngw: update \(recreated: its pod restarts\)\n {2}recreated \(its pod restarts, every rule is rebuilt\): lanIp 10\.0\.1\.254 -> 10\.0\.1\.253/,
    );
  });

  it('the result is plain data: JSON round-trips it, and it renders the same from JSON', async () => {
    const p = previewOf(await manifests((s) => set(s.gateway, 'spec.dnatRules.0.internalIp', '10.0.1.11')));
    const again = JSON.parse(JSON.stringify(p)) as Preview;
    assert.deepEqual(again, p);
    assert.equal(renderMarkdown(again, { linkTo: LINK }), renderMarkdown(p, { linkTo: LINK }));
  });
});

describe('preview: an invalid, refused or disabled head', () => {
  it('an invalid gateway at head is invalid, not deleted: nothing planned, its error at file:line with a link', async () => {
    const files = await manifests((s) => {
      set(s.gateway, 'spec.dnatRules.0.internalIp', '10.9.9.9');
      s.extra.push(...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn2', n: 2, eip: '192.168.0.120' }));
      set(s.extra[2]!, 'spec.lanIp', '10.0.3.1');
    });
    const p = previewOf(files);
    const g = gateway(p);
    assert.equal(g.action, 'invalid');
    assert.equal(g.base, 'valid');
    assert.deepEqual(g.ruleDiff, []);
    assert.ok(Object.values(g.changes).every((list) => list.length === 0));
    assert.equal(gateway(p, 'gw2').action, 'invalid');
    assert.equal(gateway(p, 'gw2').base, 'absent');
    assert.ok(!p.gateways.some((x) => x.action === 'delete'));

    const [issue] = g.issues;
    assert.ok(issue);
    const lines = files.head.find((f) => f.path === '30-nat-gateway.yaml')!.text.split('\n');
    assert.match(lines[issue.pos.line - 1]!, /internalIp: 10\.9\.9\.9/, 'the position is the bad value');
    assert.equal(p.head.issues.length, 2);

    const md = renderMarkdown(p, { linkTo: LINK });
    checkMarkdown(md);
    assert.match(
      md,
      /^❌ \*\*The head has 2 validation errors\. Invalid gateways are left as they are\.\*\* 2 gateways: 2 invalid\.$/m,
    );
    assert.match(md, /^\| gateway `ngw` \| ❌ invalid \(1 validation error\): keeps what it has live \| – \|/m);
    assert.match(md, /^\| gateway `gw2` \| ❌ invalid .*: would not be created \|/m);
    const link = `[\`30-nat-gateway.yaml:${issue.pos.line}:${issue.pos.column}\`](<${LINK('30-nat-gateway.yaml', issue.pos.line)}>)`;
    assert.ok(
      md.includes(`- ${link} \`VpcNatGateway/ngw\` \`spec.dnatRules[0].internalIp\`: 10.9.9.9 is not a host address`),
      md,
    );
    assert.doesNotMatch(md, /#### gateway `ngw`/, 'nothing planned, so no detail');

    const text = renderText(p);
    assert.match(text, /^ {2}gateway ngw +invalid \(1 validation error\): keeps what it has live$/m);
    assert.ok(text.includes(`  ${formatIssue(issue)}`));
  });

  it('a refused head applies nothing at all, and says so', async () => {
    const files = await manifests((s) => set(s.gateway, 'spec.dnatRules.0.externalPort', 8080));
    files.head.push({
      path: '50-broken.yaml',
      text: 'kind: VpcNatGateway\napiVersion: kubeovn.io/v1\nmetadata:\n  name: x\n   spec: {}\n',
    });
    const p = previewOf(files);
    assert.equal(p.head.refused, true);
    assert.deepEqual(p.gateways, []);
    const md = renderMarkdown(p, { linkTo: LINK });
    checkMarkdown(md);
    assert.match(
      md,
      /^⛔ \*\*The head is refused as a whole by 1 validation error \(an unreadable manifest, or a rule the operator sets\), so nothing would be applied: every gateway stays as it is\.\*\* No gateway would change\.$/m,
    );
    assert.match(md, /^- \[`50-broken\.yaml:5:4`\]/m);
    assert.doesNotMatch(md, /SHARED_DNAT/);
  });

  it("a disabled head (enable-vpc-nat-gw: 'false') changes nothing on any gateway", async () => {
    const p = previewOf(
      await manifests((s) => {
        set(s.config, 'data.enable-vpc-nat-gw', 'false');
        set(s.gateway, 'spec.dnatRules.0.externalPort', 8080);
      }),
    );
    assert.equal(p.head.enabled, false);
    assert.deepEqual(p.gateways, []);
    assert.match(
      renderText(p),
      /^enable-vpc-nat-gw is 'false' at head: nothing would change on any gateway\. No gateway would change\.$/m,
    );
    assert.match(
      renderMarkdown(p),
      /^⏸️ \*\*enable-vpc-nat-gw is 'false' at head: nothing would change on any gateway\.\*\* No gateway would change\.$/m,
    );
  });

  it('a broken Subnet leaves the networks as they are: a static-route change shows invalid, the gateways still apply', async () => {
    const p = previewOf(
      await manifests((s) => {
        push(s.vpc, 'spec.staticRoutes', { cidr: '172.16.0.0/16', nextHopIP: '10.0.1.254', policy: 'policyDst' });
        set(s.gateway, 'spec.dnatRules.0.externalPort', 8080);
        s.extra.push(subnet('overlap', 'test-vpc-1', '10.0.1.0/25', '10.0.1.1'));
      }),
    );
    assert.equal(p.head.networksInvalid, true);
    assert.deepEqual(
      p.vpcs.map((v) => [v.name, v.action, v.staticRoutes.length]),
      [['test-vpc-1', 'invalid', 0]],
    );
    assert.equal(gateway(p).action, 'update');
    assert.match(renderMarkdown(p), /^\| VPC `test-vpc-1` \| ❌ invalid: the networks stay as they are \|/m);
  });
});

describe('preview Markdown: cut to fit, escaped', () => {
  let many: Preview;
  let full: string;
  const LIMIT = 65_536;

  before(async () => {
    // a reviewer's pull request: the seed's forward moved 8888 -> 8080, its floating IP removed,
    // 5,000 forwards added; and a later gateway whose forward changes backend port
    many = previewOf(
      await manifests(
        (s) => {
          set(s.gateway, 'spec.dnatRules.0.externalPort', 8080);
          unset(s.gateway, 'spec.floatingIpRules.0');
          for (let i = 0; i < 5000; i++)
            push(s.gateway, 'spec.dnatRules', {
              eip: '192.168.0.112',
              externalPort: 20000 + i,
              protocol: 'tcp',
              internalIp: `10.0.1.${10 + (i % 200)}`,
              internalPort: 80,
            });
          set(s.extra[2]!, 'spec.dnatRules.0.internalPort', 81);
        },
        (s) =>
          s.extra.push(...gatewayInOwnVpc({ gateway: 'zgw', vpc: 'vpc2', subnet: 'sn2', n: 2, eip: '192.168.0.120' })),
      ),
    );
    full = renderMarkdown(many);
  });

  it('5,000 added forwards: under 65,536 characters, what breaks live traffic first and never cut, the additions as ranges', () => {
    const md = renderMarkdown(many, { limit: LIMIT, banner: ['⚠️ Outdated: the pull request was closed'] });
    assert.ok(md.length <= LIMIT, `${md.length} characters`);
    checkMarkdown(md);
    assert.ok(md.startsWith('⚠️ Outdated: the pull request was closed\n\n'), 'the banner comes first');
    const summary = full.slice(0, full.indexOf('\n\n#### '));
    assert.ok(md.includes(summary), 'the summary is whole');
    assert.match(summary, /^\| gateway `ngw` \| update \| \+0 ~0 -0 \| \+0 ~0 -1 \| \+5,000 ~1 -0 \|/m);
    // ngw's table: the removal, then the change (a moved port reads as one), then the additions as a range
    const ngw = md.slice(md.indexOf('#### gateway `ngw`'), md.indexOf('#### gateway `zgw`'));
    const rows = ngw.split('\n').filter((l) => /^\| (?!category|---)/.test(l));
    assert.deepEqual(rows, [
      '| floating IP | removed | `192.168.0.111 -> 10.0.1.5` |  | the EIP stops reaching its address, which leaves by SNAT (if any) instead; open connections are cut |',
      '| port forward | changed | `tcp 192.168.0.112:8888 -> 10.0.1.10:80` | `tcp 192.168.0.112:8080 -> 10.0.1.10:80` | open connections through the old mapping are cut |',
      '| port forwards | added |  | `5,000 port forwards tcp 192.168.0.112:20000-24999 -> 10.0.1.10-209:80` |  |',
    ]);
    // the later gateway keeps its change too
    assert.match(
      md,
      /^\| port forward \| changed \| `tcp 192\.168\.0\.120:8000 -> 10\.0\.2\.10:80` \| `tcp 192\.168\.0\.120:8000 -> 10\.0\.2\.10:81` \|/m,
    );
    // what did not fit: the list of every addition and the rule diffs, each named
    assert.match(
      md,
      /> ✂️ Cut to fit the 65,536-character limit: the rule diff of gateway `ngw` \(5,004 lines\), the list of every addition to gateway `ngw` \(5,000\) and the rule diff of gateway `zgw` \(2 lines\)\. Run `natops preview --base main --head pr` for all of it\./,
    );
    assert.ok(md.length < 5000, `${md.length} characters: a few screens`);
    // without a limit, every addition is a click away
    assert.match(full, /<details><summary>Every addition to gateway <code>ngw<\/code> \(5,000\)<\/summary>/);
    assert.match(full, /^\+ port forward tcp 192\.168\.0\.112:24999 -> 10\.0\.1\.209:80$/m);
  });

  it('when even the removals and changes do not fit, the note says how many and where', () => {
    const md = renderMarkdown(many, { limit: 1_300 });
    assert.ok(md.length <= 1_300, `${md.length}`);
    assert.match(md, /Cut to fit the 1,300-character limit/);
    assert.match(md, /(removals? (and|or) changes?)/);
    assert.match(md, /Run `natops preview --base main --head pr` for all of it/);
  });

  it('any limit: never over it, the banner, summary and every validation error first line kept while they fit', async () => {
    // a head with an invalid third gateway, so there are errors to keep
    const withError = structuredClone(many);
    const errs = previewOf(await manifests((s) => set(s.gateway, 'spec.lanIp', '10.9.9.9')));
    withError.head.issues = errs.head.issues;
    for (const limit of [300, 2_000, 10_000, 40_000, LIMIT]) {
      const md = renderMarkdown(withError, { limit, banner: ['Also changed by #12: gateway ngw'], linkTo: LINK });
      assert.ok(md.length <= limit, `${md.length} > ${limit}`);
      if (limit >= 2_000) {
        checkMarkdown(md);
        assert.ok(md.startsWith('Also changed by #12: gateway ngw\n\n'));
        assert.match(md, /^\| gateway `zgw` \|/m, `summary at ${limit}`);
        assert.match(
          md,
          /^- \[`30-nat-gateway\.yaml:\d+:\d+`\]\(<https:\/\/github\.com\/o\/r\/blob\/b{40}\/30-nat-gateway\.yaml#L\d+>\) `VpcNatGateway\/ngw` `spec\.lanIp`: /m,
          `error at ${limit}`,
        );
        assert.match(md, /Cut to fit the [\d,]+-character limit/);
      }
    }
  });

  it('hostile names and messages cannot break a table, add HTML, links or mentions, or leave a code block', async () => {
    const evil = 'x|y<script>alert(1)</script>\u001b[31m';
    const files = await manifests((s) => {
      set(
        s.gateway,
        'spec.dnatRules.0.protocol',
        'tcp|x <img src=x onerror=alert(1)> [a](https://evil.example) www.evil.example @everyone `code` *b* _i_ #12 $x$',
      );
      const other = structuredClone(s.gateway);
      set(other, 'metadata.name', evil);
      s.extra.push(other);
    });
    const p = previewOf(files);
    assert.ok(p.gateways.some((g) => g.name === evil && g.action === 'invalid'));
    // a rule diff line and an entry no manifest can produce today, to check the guards themselves
    p.gateways.push({
      name: 'zz',
      action: 'update',
      base: 'valid',
      recreate: [],
      issues: [],
      changes: {
        eips: [],
        floatingIps: [],
        portForwards: [{ change: 'added', after: 'a | b ` c `` d' }],
        snats: [],
        routes: [],
      },
      ruleDiff: ['+ ok', '```', '</details>', '````', '- still inside'],
    });
    const md = renderMarkdown(p, { linkTo: LINK });
    checkMarkdown(md);
    // what GitHub interprets, but for the links to the errors' lines
    const interpreted = outsideCode(md).replace(/\]\(<https:\/\/github\.com\/o\/r\/blob\/b{40}\/[^>]*>\)/g, ']');
    assert.doesNotMatch(interpreted, /<(?!\/?(details|summary|code)>)/, "no HTML but natops's own tags");
    assert.doesNotMatch(interpreted, /(?<!\\)\]\(/, 'no links');
    assert.doesNotMatch(interpreted, /:\/\/|www\./, 'no autolinks');
    assert.doesNotMatch(interpreted, /@(?!\u200b)/, 'no mentions');
    assert.doesNotMatch(interpreted, /#\d/, 'no issue references');
    assert.doesNotMatch(md, /\u001b/);
    assert.ok(
      md.includes('| gateway `x\\|y<script>alert(1)</script>\ufffd[31m` |'),
      'the name is a code span, its "|" escaped',
    );
    assert.ok(
      md.includes(' `VpcNatGateway/x|y<script>alert(1)</script>\ufffd[31m` `metadata.name`: '),
      'outside a table the "|" needs no escape',
    );
    assert.ok(
      md.includes('`````diff\n+ ok\n```\n</details>\n````\n- still inside\n`````\n'),
      'the fence outlasts the lines',
    );
    assert.ok(md.includes('| port forward | added |  | ```a \\| b ` c `` d``` |'));
    assert.match(
      md,
      /must be tcp or udp, not "tcp\\\|x &lt;img src=x onerror=alert\(1\)&gt; \\\[a\\\]\(https:\u200b\/\/evil\.example\) www\u200b\.evil\.example @\u200beveryone \\`code\\` \\\*b\\\* \\_i\\_ #\u200b12 \\\$x\\\$"/,
    );
    assert.doesNotMatch(renderText(p), /\u001b/, 'nor can a name drive the terminal');
    assert.equal(escapeMarkdown('a|b'), 'a\\|b');
  });
});
