// A commit id as job data and records hold it, checked with zod (apart from sha.ts, which the
// post-receive hook loads without zod).
import { z } from 'zod';
import { SHA } from './sha.ts';

export const Sha = z.string().regex(SHA);
