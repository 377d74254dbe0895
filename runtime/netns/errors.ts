// The lab's one error type, so the CLI can tell a bad lab request from a failure.
import { NatopsError } from '../../common/errors.ts';

/** A lab request that cannot be carried out: bad host or lab name, lab not up, foreign namespace. */
export class LabError extends NatopsError {}
