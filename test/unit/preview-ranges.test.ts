// Runs of added port forwards as ranges (preview/ranges.ts): what a reviewer reads in place of
// thousands of rows, and that it says every forward it stands for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ForwardFields } from '../../preview/preview.ts';
import { forwardRanges, runs } from '../../preview/ranges.ts';

const fwd = (externalPort: number, internalIp: string, more: Partial<ForwardFields> = {}): ForwardFields => ({
  protocol: 'tcp',
  eip: '192.168.0.112',
  externalPort,
  internalIp,
  internalPort: 80,
  shared: false,
  ...more,
});

describe('preview ranges', () => {
  it('runs: sorted, distinct, consecutive values joined', () => {
    assert.deepEqual(runs([5, 3, 4, 9, 9, 1]), [
      [1, 1],
      [3, 5],
      [9, 9],
    ]);
    assert.deepEqual(runs([]), []);
  });

  it('one line per protocol, EIP, internal port and kind; ports and addresses as ranges', () => {
    const forwards = [
      ...Array.from({ length: 300 }, (_, i) => fwd(20000 + i, `10.0.1.${10 + (i % 100)}`)),
      fwd(30000, '10.0.1.255'),
      fwd(30001, '10.0.2.0'),
      fwd(53, '10.0.1.10', { protocol: 'udp', internalPort: 53 }),
      fwd(8080, '10.0.1.20', { shared: true }),
      fwd(8080, '10.0.1.21', { shared: true }),
    ];
    assert.deepEqual(forwardRanges(forwards), [
      '302 port forwards tcp 192.168.0.112:20000-20299,30000-30001 -> 10.0.1.10-109,10.0.1.255-10.0.2.0:80',
      '1 port forward udp 192.168.0.112:53 -> 10.0.1.10:53',
      '2 shared port forward backends tcp 192.168.0.112:8080 -> 10.0.1.20-21:80',
    ]);
  });

  it('past four ranges, the rest are counted', () => {
    const forwards = Array.from({ length: 7 }, (_, i) => fwd(1000 + 10 * i, '10.0.1.10'));
    assert.deepEqual(forwardRanges(forwards), [
      '7 port forwards tcp 192.168.0.112:1000,1010,1020,1030,… (3 more ranges) -> 10.0.1.10:80',
    ]);
  });
});
