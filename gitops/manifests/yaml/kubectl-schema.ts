// YAML as kubectl reads it, for the `yaml` library: the tags both readers resolve scalars by.
import type { Tags } from 'yaml';

// go-yaml v2's YAML 1.1: booleans y/yes/on..., octal 0755, merge keys. It has no sexagesimal
// numbers (1:20 stays a string) and keeps timestamps as strings; yaml's 1.1 schema would not.
const DROPPED_TAGS = new Set([
  'tag:yaml.org,2002:timestamp',
  'tag:yaml.org,2002:omap',
  'tag:yaml.org,2002:pairs',
  'tag:yaml.org,2002:set',
]);
export const kubectlTags = (tags: Tags): Tags =>
  tags.filter((t) => !(typeof t === 'object' && (DROPPED_TAGS.has(t.tag) || ('format' in t && t.format === 'TIME'))));

export const YAML_OPTIONS = {
  version: '1.1',
  schema: 'yaml-1.1',
  customTags: kubectlTags,
  merge: true,
  uniqueKeys: true,
  prettyErrors: false,
  logLevel: 'error', // the YAML library's warnings (process.emitWarning) become issues or nothing
} as const;
