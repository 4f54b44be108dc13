// A check of the production dependency, run with `npm test` on the host; is-number is a dev dependency.
'use strict';

const assert = require('node:assert');
const isNumber = require('is-number');
const ms = require('ms');

assert.ok(isNumber(ms('2s')));
assert.strictEqual(ms(60000, { long: true }), '1 minute');
console.log('ok');
