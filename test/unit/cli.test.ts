// The command line without root: help, validate, plan between two trees, dry-run apply.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { natops } from '../helpers/cli.ts';
import { seedObjects, set, writeManifestDir } from '../helpers/manifests.ts';

describe('natops CLI', () => {
  it('--help lists the commands', async () => {
    const r = await natops(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['validate', 'plan', 'apply', 'lab']) assert.match(r.stdout, new RegExp(`^  ${cmd} `, 'm'));
  });

  it('plan --against live reads only a runtime plan knows: NATOPS_RUNTIME=dry-run is not taken', async () => {
    // As nobody: the netns runtime refuses to read the lab; a dry run would report every gateway new.
    const r = await natops(['plan', 'examples/seed', '--against', 'live'], {
      env: { NATOPS_RUNTIME: 'dry-run' },
      uid: 65534,
    });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /plan --against live --runtime netns needs root \(it reads the lab's network namespaces\)/);
  });

  it('validate accepts the seed', async () => {
    const r = await natops(['validate', 'examples/seed']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ok: 1 VPC(s), 1 subnet(s), 1 gateway(s)');
  });

  it('validate rejects the seed as printed: file, line, column, resource and field, exit 1', async () => {
    const r = await natops(['validate', 'examples/seed-verbatim.yaml']);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.match(
      lines[0]!,
      /^examples\/seed-verbatim\.yaml:6:3 {2}VpcNatGateway\/\? {2}\(yaml\): bad indentation: this line is indented deeper than "apiVersion" on line 5/,
    );
    assert.equal(lines.at(-1), 'natops: 4 problems; nothing was changed');
  });

  it('validate takes the manifest limits from the environment, and names a bad one', async () => {
    const small = await natops(['validate', 'examples/seed'], { env: { NATOPS_MANIFEST_MAX_FILE_BYTES: '100' } });
    assert.equal(small.code, 1);
    assert.match(
      small.stderr,
      /^examples\/seed\/30-nat-gateway\.yaml:1:1 .*is \d+ bytes, more than the 100 natops reads in one file/m,
    );
    const bad = await natops(['validate', 'examples/seed'], { env: { NATOPS_MANIFEST_MAX_DEPTH: 'deep' } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /NATOPS_MANIFEST_MAX_DEPTH: /);
  });

  it("validate applies the operator's policy: an unlisted image and a control-plane toleration, each at its line", async () => {
    const seed = await seedObjects();
    set(seed.config, 'data.image', 'evil.example/x:1');
    set(seed.gateway, 'spec.tolerations', [{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists' }]);
    const dir = await writeManifestDir(seed);
    // unset (empty): the product's default, not the tests' list
    const r = await natops(['validate', dir], { env: { NATOPS_GATEWAY_IMAGES: '', NATOPS_ALLOW_CONTROL_PLANE: '' } });
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stderr,
      /^\S*00-config\.yaml:\d+:\d+ {2}ConfigMap\/ovn-vpc-nat-gw-config {2}data\.image: image evil\.example\/x:1 is not one the operator allows \(kubeovn\/vpc-nat-gateway:v1\.7\.0\); .*NATOPS_GATEWAY_IMAGES$/m,
    );
    assert.match(
      r.stderr,
      /^\S*30-nat-gateway\.yaml:\d+:\d+ {2}VpcNatGateway\/ngw {2}spec\.tolerations\[0\]\.key: tolerating node-role\.kubernetes\.io\/control-plane .*NATOPS_ALLOW_CONTROL_PLANE=true$/m,
    );
    assert.match(r.stderr, /^natops: 2 problems; nothing was changed$/m);
    const allowed = await natops(['validate', dir], {
      env: {
        NATOPS_GATEWAY_IMAGES: 'kubeovn/vpc-nat-gateway:v1.7.0, evil.example/x:1',
        NATOPS_ALLOW_CONTROL_PLANE: 'true',
      },
    });
    assert.equal(allowed.code, 0, allowed.stderr);
  });

  it('plan --against another tree shows the port forward change in words and as a rule diff', async () => {
    const seed = await seedObjects();
    const before = await writeManifestDir(seed);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8080);
    const after = await writeManifestDir(seed);
    const r = await natops(['plan', after, '--against', before]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'gateway ngw: update',
        '  + port forward tcp 192.168.0.112:8080 -> 10.0.1.10:80',
        '  - port forward tcp 192.168.0.112:8888 -> 10.0.1.10:80',
        '  rule diff:',
        '    + -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.10:80',
        '    - -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
        '',
      ].join('\n'),
    );
  });

  it('apply --runtime dry-run prints the exact commands and the iptables-restore payload', async () => {
    const r = await natops(['apply', 'examples/seed', '--runtime', 'dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# gateway ngw: /);
    assert.match(r.stdout, /\nip rule add iif net1 table 100\n/);
    assert.match(
      r.stdout,
      /\niptables-legacy-restore -w --noflush <<'EOF'\n\*nat\n:DNAT_FILTER - \[0:0\]\n[\s\S]*\n-A SHARED_DNAT -d 192\.168\.0\.112\/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10\.0\.1\.10:80\n[\s\S]*COMMIT\nEOF\n/,
    );
  });

  it('apply refuses invalid manifests before doing anything', async () => {
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.protocol', 'icmp');
    const r = await natops(['apply', await writeManifestDir(seed), '--runtime', 'dry-run']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /30-nat-gateway\.yaml:\d+:\d+ {2}VpcNatGateway\/ngw {2}spec\.dnatRules\[0\]\.protocol: must be tcp or udp, not "icmp"/,
    );
  });
});
