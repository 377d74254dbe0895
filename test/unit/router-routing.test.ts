// A VPC router's static routes (pure): what they become, and the commands that bring a router's
// routes and rules (as `ip -j route show table all` and `ip -j rule show` print them) to that.
// Nothing when they match; never a flush.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffRouting, routerRouting, type IpRoute, type IpRule } from '../../runtime/netns/router-routes.ts';
import type { StaticRoute } from '../../dataplane/network.ts';

const STATIC: StaticRoute[] = [
  { cidr: '0.0.0.0/0', nextHopIP: '10.0.1.254', policy: 'policyDst' },
  { cidr: '10.0.1.6/32', nextHopIP: '10.0.1.253', policy: 'policySrc' },
  { cidr: '10.0.2.0/24', nextHopIP: '10.0.1.252', policy: 'policySrc' },
];

// What a router built for STATIC prints, with the kernel's own routes around it.
const ROUTES: IpRoute[] = [
  { dst: 'default', gateway: '10.0.1.253', table: '1001', protocol: 'static' },
  { dst: 'default', gateway: '10.0.1.252', table: '1002', protocol: 'static' },
  { dst: 'default', gateway: '10.0.1.254', protocol: 'static' },
  { dst: '10.0.1.0/24', protocol: 'kernel' },
  { type: 'local', dst: '10.0.1.1', table: 'local', protocol: 'kernel' },
  { type: 'broadcast', dst: '10.0.1.255', table: 'local', protocol: 'kernel' },
];
const RULES: IpRule[] = [
  { priority: 0, src: 'all', table: 'local' },
  { priority: 1000, src: '10.0.1.6', table: 'main', suppress_prefixlen: 0 },
  { priority: 1000, src: '10.0.2.0', srclen: 24, table: 'main', suppress_prefixlen: 0 },
  { priority: 1001, src: '10.0.1.6', table: '1001' },
  { priority: 1002, src: '10.0.2.0', srclen: 24, table: '1002' },
  { priority: 32766, src: 'all', table: 'main' },
  { priority: 32767, src: 'all', table: 'default' },
];

const argv = (want: StaticRoute[], routes: IpRoute[], rules: IpRule[]) =>
  diffRouting(routerRouting(want), routes, rules).map((c) => c.args.join(' '));

describe("a VPC router's static routes", () => {
  it('become main-table routes, and per source route a table and two rules', () => {
    assert.deepEqual(argv(STATIC, [], []), [
      'route replace 0.0.0.0/0 via 10.0.1.254 proto static',
      'route replace 0.0.0.0/0 via 10.0.1.253 table 1001 proto static',
      'route replace 0.0.0.0/0 via 10.0.1.252 table 1002 proto static',
      'rule add pref 1000 from 10.0.1.6/32 table main suppress_prefixlength 0',
      'rule add pref 1001 from 10.0.1.6/32 table 1001',
      'rule add pref 1000 from 10.0.2.0/24 table main suppress_prefixlength 0',
      'rule add pref 1002 from 10.0.2.0/24 table 1002',
    ]);
  });

  it('change nothing when the router matches', () => {
    assert.deepEqual(diffRouting(routerRouting(STATIC), ROUTES, RULES), []);
    assert.deepEqual(
      diffRouting(
        routerRouting([]),
        ROUTES.filter((r) => r.protocol === 'kernel'),
        RULES.filter((r) => r.priority < 1000 || r.priority > 2000),
      ),
      [],
    );
  });

  it('replace a changed next hop in place, and say what it was', () => {
    const moved = STATIC.map((r) => (r.cidr === '0.0.0.0/0' ? { ...r, nextHopIP: '10.0.1.250' } : r));
    assert.deepEqual(diffRouting(routerRouting(moved), ROUTES, RULES), [
      {
        args: ['route', 'replace', '0.0.0.0/0', 'via', '10.0.1.250', 'proto', 'static'],
        what: 'route 0.0.0.0/0 via 10.0.1.250 (was via 10.0.1.254)',
      },
    ]);
    const srcMoved = STATIC.map((r) => (r.cidr === '10.0.1.6/32' ? { ...r, nextHopIP: '10.0.1.250' } : r));
    assert.deepEqual(argv(srcMoved, ROUTES, RULES), ['route replace 0.0.0.0/0 via 10.0.1.250 table 1001 proto static']);
  });

  it('remove what left the manifests: a destination route, a source route with its rules and table', () => {
    assert.deepEqual(argv(STATIC.slice(0, 2), ROUTES, RULES), [
      'rule del pref 1000 from 10.0.2.0/24 table main suppress_prefixlength 0',
      'rule del pref 1002 from 10.0.2.0/24 table 1002',
      'route del 0.0.0.0/0 table 1002',
    ]);
    assert.deepEqual(argv(STATIC.slice(1), ROUTES, RULES), ['route del 0.0.0.0/0']);
  });

  it('add routes before rules and delete rules before routes (a rule never points at an empty table)', () => {
    // The first source route goes: the second moves to table 1001.
    assert.deepEqual(argv([STATIC[0]!, STATIC[2]!], ROUTES, RULES), [
      'route replace 0.0.0.0/0 via 10.0.1.252 table 1001 proto static',
      'rule add pref 1001 from 10.0.2.0/24 table 1001',
      'rule del pref 1000 from 10.0.1.6/32 table main suppress_prefixlength 0',
      'rule del pref 1001 from 10.0.1.6/32 table 1001',
      'rule del pref 1002 from 10.0.2.0/24 table 1002',
      'route del 0.0.0.0/0 table 1002',
    ]);
  });

  it('repair hand edits in what natops owns and leave the rest alone', () => {
    const routes: IpRoute[] = [
      ...ROUTES.filter((r) => r.table !== '1001' && r.table !== '1002'),
      { dst: '198.51.100.0/24', gateway: '10.0.1.9', protocol: 'static', metric: 50 },
      { dst: '198.51.101.7', gateway: '10.0.1.9', protocol: 'boot' }, // not natops's: another protocol in main
      { type: 'unreachable', dst: '198.51.102.0/24', table: '1500', protocol: 'boot' },
      { dst: '198.51.103.0/24', gateway: '10.0.1.9', table: '2500', protocol: 'static' }, // outside natops's tables
      { dst: 'default', gateway: '10.0.1.254', protocol: 'boot', table: '1002' },
    ];
    const rules: IpRule[] = [
      ...RULES.filter((r) => r.priority !== 1001),
      { priority: 1003, src: 'all', table: '1003' },
      { priority: 1004, src: '10.0.1.7', fwmark: '0x1', table: '1004' }, // a selector natops never sets
    ];
    assert.deepEqual(argv(STATIC, routes, rules), [
      'route replace 0.0.0.0/0 via 10.0.1.253 table 1001 proto static',
      'route replace 0.0.0.0/0 via 10.0.1.252 table 1002 proto static',
      'rule add pref 1001 from 10.0.1.6/32 table 1001',
      'rule del pref 1003 from 0.0.0.0/0 table 1003',
      'route del 198.51.100.0/24 metric 50',
      'route del unreachable 198.51.102.0/24 table 1500',
    ]);
  });

  it('keep the last next hop of a repeated destination', () => {
    assert.deepEqual(argv([STATIC[0]!, { ...STATIC[0]!, nextHopIP: '10.0.1.250' }], [], []), [
      'route replace 0.0.0.0/0 via 10.0.1.250 proto static',
    ]);
  });
});
