#!/usr/bin/env node
// Stripe's own Node library as an outside oracle for the platform's webhook signatures
// (connectors/tests/provider_oracles.rs). The payload is read raw from stdin.
//
//   node stripe.js sign <secret> <timestamp>             prints the Stripe-Signature header
//   node stripe.js verify <secret> <header> <tolerance>  prints `ok` or `error: <why>`
//
// Exit status 0 for both answers of `verify`; 2 for a usage error.
'use strict';

const Stripe = require('stripe');

// No request is ever made: the webhook helpers only compute and compare HMACs.
const stripe = new Stripe('sk_test_oracle');

function usage() {
  process.stderr.write(
    'usage: stripe.js sign <secret> <timestamp> | verify <secret> <header> <tolerance> (payload on stdin)\n',
  );
  process.exit(2);
}

function readStdin() {
  return require('fs').readFileSync(0);
}

const [command, ...args] = process.argv.slice(2);
if (command === 'sign' && args.length === 2) {
  const [secret, timestamp] = args;
  const t = Number(timestamp);
  if (!Number.isInteger(t)) usage();
  const header = stripe.webhooks.generateTestHeaderString({
    payload: readStdin().toString('utf8'),
    secret,
    timestamp: t,
  });
  process.stdout.write(`${header}\n`);
} else if (command === 'verify' && args.length === 3) {
  const [secret, header, tolerance] = args;
  const seconds = Number(tolerance);
  if (!Number.isInteger(seconds)) usage();
  try {
    stripe.webhooks.constructEvent(readStdin(), header, secret, seconds);
    process.stdout.write('ok\n');
  } catch (e) {
    process.stdout.write(`error: ${String(e.message).split('\n')[0]}\n`);
  }
} else {
  usage();
}
