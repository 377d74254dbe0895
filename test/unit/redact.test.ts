// A Redis URL's password never reaches a log line or a message.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactUrl } from '../../common/redact.ts';

describe('redactUrl', () => {
  it('hides the password and keeps the rest', () => {
    assert.equal(redactUrl('redis://:s3cret@127.0.0.1:6379/0'), 'redis://:***@127.0.0.1:6379/0');
    assert.equal(redactUrl('redis://natops:s3cret@redis.natops:6379'), 'redis://natops:***@redis.natops:6379');
  });
  it('leaves a URL without a password as it is, and shows nothing of one that does not parse', () => {
    assert.equal(redactUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
    assert.doesNotMatch(redactUrl('redis://:s3cret@[bad'), /s3cret/);
  });
});
