// The sentences both renderings say (Markdown for a pull request, text for a terminal). They hold
// natops's own words and numbers only: each renderer adds manifest values its own safe way.
import { refusesCommit } from '../gitops/manifests/issues.ts';
import {
  PREVIEW_ACTIONS,
  type Category,
  type Counts,
  type EntryChange,
  type GatewayPreview,
  type Preview,
  type PreviewAction,
} from './preview.ts';

export const count = (n: number): string => n.toLocaleString('en-US');
export const plural = (n: number, one: string, many = `${one}s`): string => `${count(n)} ${n === 1 ? one : many}`;

export const countsText = (c: Counts): string => `+${count(c.added)} ~${count(c.changed)} -${count(c.removed)}`;

export const CHANGE_MARK: Record<EntryChange['change'], string> = { added: '+', changed: '~', removed: '-' };

/** The one-sentence verdict on the head, and whether it passes (no validation errors). */
export function verdict(p: Preview): { ok: boolean; text: string } {
  const n = p.head.issues.length;
  if (p.head.refused) {
    const unreadable = p.head.issues.filter(refusesCommit).length;
    return {
      ok: false,
      text:
        `The head is refused as a whole by ${plural(unreadable, 'validation error')} (an unreadable manifest, or a rule the operator sets), ` +
        'so nothing would be applied: every gateway stays as it is.',
    };
  }
  const errors = n ? ` It also has ${plural(n, 'validation error')}.` : '';
  if (!p.head.enabled)
    return { ok: n === 0, text: `enable-vpc-nat-gw is 'false' at head: nothing would change on any gateway.${errors}` };
  if (!n) return { ok: true, text: 'The head is valid.' };
  const parts = [`The head has ${plural(n, 'validation error')}.`];
  const { invalid } = p.totals.actions;
  if (invalid)
    parts.push(`Invalid gateways are left as they are${invalid < p.gateways.length ? '; the others apply' : ''}.`);
  if (p.head.networksInvalid) parts.push('The networks (VPC static routes) stay as they are.');
  return { ok: false, text: parts.join(' ') };
}

const ACTION_WORDS: Record<PreviewAction, string> = {
  create: 'to create',
  update: 'to update',
  delete: 'to delete',
  invalid: 'invalid',
  unchanged: 'unchanged',
};

/** "Gateways: 1 to update, 1 invalid, 3 unchanged." */
export function actionsSentence(p: Preview): string {
  if (!p.gateways.length) return p.head.refused || !p.head.enabled ? 'No gateway would change.' : 'No gateways.';
  const parts = PREVIEW_ACTIONS.filter((a) => p.totals.actions[a]).map(
    (a) => `${count(p.totals.actions[a])} ${ACTION_WORDS[a]}`,
  );
  return `${plural(p.gateways.length, 'gateway')}: ${parts.join(', ')}.`;
}

/** A gateway's action with what a reviewer must know about it, for its summary row and heading. */
export function actionWords(g: GatewayPreview): string {
  if (g.action === 'invalid') {
    const what =
      g.base === 'valid'
        ? 'keeps what it has live'
        : g.base === 'invalid'
          ? 'invalid at base too: nothing is live'
          : 'would not be created';
    return `invalid (${plural(g.issues.length, 'validation error')}): ${what}`;
  }
  if (g.action === 'create' && g.base === 'invalid') return 'create (invalid at base)';
  return g.recreate.length ? `${g.action} (recreated: its pod restarts)` : g.action;
}

/** What the base was: it stands for what is live. */
export function baseNotes(p: Preview): string[] {
  const notes: string[] = [];
  if (p.base.refused)
    notes.push('The base is refused as a whole: gateways in its unreadable manifests are compared as new.');
  else if (p.base.issueCount)
    notes.push(
      `The base has ${plural(p.base.issueCount, 'validation error')}: gateways invalid there are compared as new.`,
    );
  if (!p.base.enabled) notes.push("enable-vpc-nat-gw is 'false' at base: its manifests stand for what is live.");
  return notes;
}

/**
 * What a removal or change does to live traffic, in natops's words (the rule forms it writes and
 * the conntrack clean-up it runs for a removed mapping: dataplane/rules.ts conntrackCleanup).
 */
export function breaks(category: Category, e: EntryChange): string {
  const removed = e.change === 'removed';
  switch (category) {
    case 'portForwards':
      return removed
        ? 'new connections to the port are refused; open ones are cut'
        : 'open connections through the old mapping are cut';
    case 'floatingIps':
      return removed
        ? 'the EIP stops reaching its address, which leaves by SNAT (if any) instead; open connections are cut'
        : 'open connections through the old mapping are cut';
    case 'snats':
      return removed
        ? 'sources in the CIDR lose this way out (a shorter prefix takes them, if any); open flows are cut'
        : 'sources in the CIDR leave from another address; open flows are cut';
    case 'eips':
      return removed ? 'the address stops answering on the external network' : 'the address or its next hop changes';
    case 'routes':
      return removed ? 'the gateway stops routing to it' : 'traffic to it takes another next hop';
  }
}
