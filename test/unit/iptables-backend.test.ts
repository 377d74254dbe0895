// Which iptables a gateway's nat rules are in (runtime/gateway-io.ts natFromSaves): the one that
// holds natops's chains, else legacy where it works, as Kube-OVN's gateway image chooses, else
// nft; a save that failed for a reason other than absence fails the read rather than let natops
// build a second copy of the chains in the other iptables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandError } from '../../common/exec.ts';
import { isRetryable } from '../../common/errors.ts';
import { DualIptablesError, natFromSaves, type Section } from '../../runtime/gateway-io.ts';

const ok = (stdout: string): Section => ({ stdout, stderr: '', code: 0 });
const failed = (code: number, stderr: string): Section => ({ stdout: '', stderr, code });
const EMPTY = ok('*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n');
const NATOPS = ok(
  '*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DNAT_FILTER - [0:0]\n:SHARED_DNAT - [0:0]\n' +
    '-A PREROUTING -j DNAT_FILTER\n-A DNAT_FILTER -j SHARED_DNAT\n' +
    '-A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80\nCOMMIT\n',
);
const NOT_INSTALLED = failed(127, 'sh: 1: iptables-legacy-save: not found\n');
const NO_KERNEL_TABLE = failed(
  1,
  'iptables-legacy-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)\n',
);
const NO_KERNEL_MODULE = failed(
  1,
  'iptables-legacy-save v1.8.9 (legacy): Cannot initialize: iptables who? (do you need to insmod?)\n',
);
const NO_NF_TABLES = failed(
  4,
  'iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Invalid argument\n',
);
const NFT_INCOMPATIBLE = ok("# Table `nat' is incompatible, use 'nft' tool.\n");
const BROKEN = failed(1, 'iptables-save: broken on purpose\n');
/** chains declared, no rule in them yet (init done, no mapping) */
const NATOPS_EMPTY_CHAINS = ok(
  '*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DNAT_FILTER - [0:0]\nCOMMIT\n',
);
/** failures that say nothing of absence: the save of the iptables that holds the chains may have failed */
const NOT_ABSENCE = [
  failed(
    4,
    'iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
  ),
  failed(1, 'iptables-legacy-save v1.8.9 (legacy): Cannot initialize: Permission denied (you must be root)\n'),
  failed(
    127,
    'iptables-legacy-save: error while loading shared libraries: libip4tc.so.2: cannot open shared object file: No such file or directory\n',
  ),
  failed(
    1,
    'Warning: Extension DNAT revision 0 not supported, missing kernel module?\niptables-save: something else went wrong\n',
  ),
  failed(137, ''),
];

describe("the iptables a gateway's nat rules are in", () => {
  it("a new gateway: legacy, where it works (as Kube-OVN's gateway)", () => {
    const r = natFromSaves({ legacy: EMPTY, nft: EMPTY });
    assert.equal(r.iptables, 'legacy');
    assert.equal(r.nat.SHARED_DNAT, undefined);
  });

  it('a gateway whose chains are in nft stays there, its rules read from nft', () => {
    const r = natFromSaves({ legacy: EMPTY, nft: NATOPS });
    assert.equal(r.iptables, 'nft');
    assert.deepEqual(r.nat.SHARED_DNAT, [
      '-d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
    ]);
    assert.deepEqual(r.nat.PREROUTING, ['-j DNAT_FILTER']);
  });

  it('a gateway whose chains are in legacy: legacy, whatever nft says', () => {
    for (const nft of [EMPTY, BROKEN, NOT_INSTALLED]) {
      const r = natFromSaves({ legacy: NATOPS, nft });
      assert.equal(r.iptables, 'legacy');
      assert.equal(r.nat.SHARED_DNAT?.length, 1);
    }
  });

  it('no legacy here (not installed, or not in the kernel): nft', () => {
    for (const legacy of [NOT_INSTALLED, NO_KERNEL_TABLE, NO_KERNEL_MODULE])
      assert.equal(natFromSaves({ legacy, nft: EMPTY }).iptables, 'nft');
  });

  it('only the lines that mean absence count as absence; any other failure fails the read', () => {
    for (const f of NOT_ABSENCE) {
      assert.throws(() => natFromSaves({ legacy: EMPTY, nft: f }), CommandError, f.stderr);
      assert.throws(() => natFromSaves({ legacy: f, nft: EMPTY }), CommandError, f.stderr);
    }
  });

  it("chains declared without a rule in them are natops's chains too", () => {
    assert.equal(natFromSaves({ legacy: EMPTY, nft: NATOPS_EMPTY_CHAINS }).iptables, 'nft');
    assert.equal(natFromSaves({ legacy: NOT_INSTALLED, nft: NATOPS }).iptables, 'nft');
  });

  it('no nf_tables in the kernel (CentOS 7): legacy', () => {
    assert.equal(natFromSaves({ legacy: EMPTY, nft: NO_NF_TABLES }).iptables, 'legacy');
  });

  it("natops's chains in both: an error saying so, not a choice that leaves a copy acting on packets", () => {
    assert.throws(
      () => natFromSaves({ legacy: NATOPS, nft: NATOPS_EMPTY_CHAINS }),
      (e: unknown) =>
        e instanceof DualIptablesError && /both iptables-legacy and iptables-nft/.test(e.message) && !isRetryable(e),
    );
  });

  it('an nf_tables nat table iptables-nft cannot show is not taken for an empty one', () => {
    assert.throws(
      () => natFromSaves({ legacy: EMPTY, nft: NFT_INCOMPATIBLE }),
      (e: unknown) => e instanceof CommandError && e.argv[0] === 'iptables-nft-save' && /incompatible/.test(e.message),
    );
    assert.equal(natFromSaves({ legacy: NATOPS, nft: NFT_INCOMPATIBLE }).iptables, 'legacy');
  });

  it('a save that failed otherwise fails the read unless the other iptables holds the chains', () => {
    assert.throws(
      () => natFromSaves({ legacy: BROKEN, nft: EMPTY }),
      (e: unknown) =>
        e instanceof CommandError && e.argv[0] === 'iptables-legacy-save' && /broken on purpose/.test(e.message),
    );
    assert.throws(
      () => natFromSaves({ legacy: EMPTY, nft: BROKEN }),
      (e: unknown) => e instanceof CommandError && e.argv[0] === 'iptables-nft-save',
    );
    assert.equal(natFromSaves({ legacy: BROKEN, nft: NATOPS }).iptables, 'nft');
  });

  it('neither iptables here: the read fails', () => {
    assert.throws(
      () => natFromSaves({ legacy: NOT_INSTALLED, nft: failed(127, 'sh: 1: iptables-nft-save: not found\n') }),
      (e: unknown) => e instanceof CommandError && /iptables-legacy-save.*exited 127/.test(e.message),
    );
  });
});
