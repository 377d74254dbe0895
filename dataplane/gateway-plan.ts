// What would change, gateway by gateway, going from current states to desired specs. Pure:
// the current side comes from live gateways, another manifest tree, or another commit.
import { compileGateway, emptyGatewayState } from './compile.ts';
import { diffStates, isEmptyChangeSet, type ChangeSet } from './diff.ts';
import type { GatewaySpec, GatewayState } from './model.ts';
import { removalTarget, type GatewayAction } from './plan-text.ts';

export interface GatewayPlan {
  name: string;
  action: GatewayAction;
  changes: ChangeSet;
}

export function planGateways(
  current: ReadonlyMap<string, GatewayState>,
  desired: ReadonlyMap<string, GatewaySpec>,
): GatewayPlan[] {
  const names = [...new Set([...current.keys(), ...desired.keys()])].sort();
  return names.map((name) => {
    const have = current.get(name);
    const spec = desired.get(name);
    if (!spec) return { name, action: 'delete', changes: diffStates(have!, removalTarget(have!)) };
    const changes = diffStates(have ?? emptyGatewayState(), compileGateway(spec));
    return { name, action: !have ? 'create' : isEmptyChangeSet(changes) ? 'unchanged' : 'update', changes };
  });
}
