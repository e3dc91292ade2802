// panva's `jose` as an outside oracle for the platform's JWTs (see
// tests/it/jose_oracle.rs). Reads a JSON request on stdin, writes JSON on stdout.
//
//   node jose.js verify        {token, jwks, issuer, audience, algorithms}
//     → {"ok": true, "payload": {...}, "header": {...}} or {"ok": false, "code": "ERR_…"}
//   node jose.js sign          {alg, kid, claims}
//     → {"token": "…", "jwks": {"keys": [public JWK]}}   (a fresh key pair per call)
'use strict';

const jose = require('jose');

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function verify(request) {
  const keys = jose.createLocalJWKSet(request.jwks);
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(request.token, keys, {
      issuer: request.issuer,
      audience: request.audience,
      algorithms: request.algorithms,
    });
    return { ok: true, payload, header: protectedHeader };
  } catch (e) {
    return { ok: false, code: e.code || e.name, message: e.message };
  }
}

async function sign(request) {
  const { publicKey, privateKey } = await jose.generateKeyPair(request.alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  Object.assign(jwk, { kid: request.kid, alg: request.alg, use: 'sig' });
  const token = await new jose.SignJWT(request.claims)
    .setProtectedHeader({ alg: request.alg, kid: request.kid, typ: 'JWT' })
    .sign(privateKey);
  return { token, jwks: { keys: [jwk] } };
}

(async () => {
  const command = process.argv[2];
  const request = await readStdin();
  const answer = command === 'verify' ? await verify(request)
    : command === 'sign' ? await sign(request)
    : (() => { throw new Error(`unknown command ${command}`); })();
  process.stdout.write(JSON.stringify(answer));
})().catch((e) => {
  process.stderr.write(String(e && e.stack || e));
  process.exit(2);
});
