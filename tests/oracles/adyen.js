#!/usr/bin/env node
// Adyen's own Node library as an outside oracle for the platform's webhook HMACs
// (connectors/tests/provider_oracles.rs). A NotificationRequestItem's JSON is read from
// stdin (bare, or wrapped as {"NotificationRequestItem": {...}}).
//
//   node adyen.js sign <hexKey>    prints the item's HMAC (base64), from hmacValidator.calculateHmac
//   node adyen.js verify <hexKey>  prints `ok` or `invalid`, from hmacValidator.validateHMAC
//
// Exit status 0 for both answers of `verify`; 2 for a usage error or unreadable JSON.
'use strict';

// The class the package exports as `hmacValidator`, loaded from its own module: the package's
// index loads every API client first, four times slower than this on every call.
const HmacValidator = require('@adyen/api-library/lib/src/utils/hmacValidator').default;

function usage(message) {
  process.stderr.write(`${message || 'usage: adyen.js sign|verify <hexKey> (item JSON on stdin)'}\n`);
  process.exit(2);
}

function readItem() {
  let json;
  try {
    json = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  } catch (e) {
    usage(`not JSON on stdin: ${e.message}`);
  }
  const keys = json && typeof json === 'object' ? Object.keys(json) : [];
  return keys.length === 1 && keys[0] === 'NotificationRequestItem' ? json.NotificationRequestItem : json;
}

const [command, key, ...rest] = process.argv.slice(2);
if (!key || rest.length) usage();
const validator = new HmacValidator();
if (command === 'sign') {
  process.stdout.write(`${validator.calculateHmac(readItem(), key)}\n`);
} else if (command === 'verify') {
  process.stdout.write(validator.validateHMAC(readItem(), key) ? 'ok\n' : 'invalid\n');
} else {
  usage();
}
