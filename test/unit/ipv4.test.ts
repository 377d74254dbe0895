// Containment as numbers (common/ipv4.ts), against its definition by network and broadcast
// addresses, for every prefix length and addresses at and around each network's edges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  broadcastAddress,
  cidrContains,
  ipv4FromInt,
  ipv4ToInt,
  isHostIn,
  networkAddress,
  type Cidr,
} from '../../common/ipv4.ts';

describe('IPv4 containment', () => {
  it('cidrContains and isHostIn agree with the network and broadcast addresses, every prefix', () => {
    const base = ipv4ToInt('172.20.37.129');
    let checked = 0;
    for (let prefix = 0; prefix <= 32; prefix++) {
      const cidr: Cidr = { address: ipv4FromInt(base), prefix };
      const net = networkAddress(cidr.address, prefix);
      const bcast = broadcastAddress(cidr.address, prefix);
      const edges = [ipv4ToInt(net), ipv4ToInt(bcast)].flatMap((n) => [n - 1, n, n + 1]);
      for (const n of [...edges, base, 0, 2 ** 32 - 1].filter((x) => x >= 0 && x < 2 ** 32)) {
        const ip = ipv4FromInt(n);
        const inside = networkAddress(ip, prefix) === net;
        assert.equal(cidrContains(cidr, ip), inside, `${ip} in ${cidr.address}/${prefix}`);
        const host = inside && (prefix >= 31 || (ip !== net && ip !== bcast));
        assert.equal(isHostIn(cidr, ip), host, `${ip} a host of ${cidr.address}/${prefix}`);
        checked++;
      }
    }
    assert.ok(checked > 200);
  });

  it('an address written with leading zeros is the address it names', () => {
    assert.equal(isHostIn({ address: '10.0.1.0', prefix: 24 }, '10.0.1.010'), true);
    assert.equal(isHostIn({ address: '10.0.1.0', prefix: 24 }, '10.0.1.000'), false);
  });
});
