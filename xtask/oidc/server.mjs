// oidc-provider (an OpenID Certified authorization server for Node.js), configured
// minimally on loopback for the refresh-grant comparison of `cargo xtask bench`:
// one confidential client, rotating refresh tokens, an in-memory adapter without a size cap.
// Usage: node server.mjs PORT TOKENS OUTFILE — mints TOKENS refresh tokens into OUTFILE
// (one per line, each in a grant of its own), then prints "ready" and serves.
import { writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

// The development adapter is an LRU of 1 000 entries; a load needs every token kept, so
// this is the same in-memory storage without the cap (the documented adapter interface).
const stores = new Map();
class MemoryAdapter {
  constructor(name) { this.name = name; if (!stores.has(name)) stores.set(name, new Map()); this.map = stores.get(name); }
  async upsert(id, payload) { this.map.set(id, payload); if (payload.grantId) { const k = `grant:${payload.grantId}`; const g = this.map.get(k) || []; g.push(id); this.map.set(k, g); } }
  async find(id) { return this.map.get(id); }
  async findByUserCode(code) { for (const v of this.map.values()) if (v && v.userCode === code) return v; return undefined; }
  async findByUid(uid) { for (const v of this.map.values()) if (v && v.uid === uid) return v; return undefined; }
  async consume(id) { const v = this.map.get(id); if (v) v.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { this.map.delete(id); }
  async revokeByGrantId(grantId) { for (const [name, m] of stores) { const ids = m.get(`grant:${grantId}`) || []; ids.forEach((i) => m.delete(i)); m.delete(`grant:${grantId}`); } }
}

const [port, count, outfile] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients: [{
    client_id: 'bench',
    client_secret: 'fxs_bench-secret-0123456789',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['http://127.0.0.1/callback'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  rotateRefreshToken: true,
  issueRefreshToken: async () => true,
  ttl: { AccessToken: 3600, RefreshToken: 90 * 24 * 3600, Grant: 90 * 24 * 3600 },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
});
provider.proxy = false;

const client = await provider.Client.find('bench');
const tokens = [];
for (let i = 0; i < count; i += 1) {
  const accountId = `user-${i}`;
  const grant = new provider.Grant({ accountId, clientId: 'bench' });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const rt = new provider.RefreshToken({
    accountId, client, grantId, gty: 'authorization_code', scope: 'openid offline_access',
    authTime: Math.floor(Date.now() / 1000), sessionUid: `s-${i}`, expiresWithSession: false,
  });
  tokens.push(await rt.save());
}
writeFileSync(outfile, tokens.join('\n') + '\n');
provider.listen(port, '127.0.0.1', () => { process.stdout.write('ready\n'); });
