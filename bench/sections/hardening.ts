// Section 5, hardening (issue 12): the hostile loads of the security tests, measured. The
// server alone in its process, on loopback, with its defaults:
// - partial frames: N connections each sending the first 4 bytes of a header declaring
//   65,535 bytes; the server's RSS (after a full GC) before, with them, and after they
//   closed; the same against a bare node:net server holding the same connections, Node's floor;
// - guessing: 128 connections from 50 loopback addresses guessing secrets while a client
//   verified before logs in again and again, and clients never seen before log in once each.

import { type GuessingResult, type LoginTry, type PartialFrameResult, guessing, loopbackSources, partialFrames } from '../../test/support/hostile.js';
import { FIXTURES } from '../netlab.js';
import { errorText } from '../util.js';
import type { Section } from './section.js';

export interface LoginSummary {
  tries: number;
  granted: number;
  maxMs: number;
  medianMs: number;
}

export interface HardeningResult {
  partial: PartialFrameResult | null;
  /** A bare node:net server under the same connections. */
  floor: PartialFrameResult | null;
  guessing: {
    known: LoginSummary;
    fresh: LoginSummary;
    attack: GuessingResult['attack'];
    refusals: Record<string, number>;
    /** Credential checks (scrypt) run per second during the attack. */
    checksPerSecond: number;
  } | null;
  errors: string[];
}

function summary(t: LoginTry[]): LoginSummary {
  const ms = t.map((x) => x.ms).sort((a, b) => a - b);
  return { tries: t.length, granted: t.filter((x) => x.outcome === 'granted').length, maxMs: ms[ms.length - 1] ?? 0, medianMs: ms[Math.floor(ms.length / 2)] ?? 0 };
}

export const runHardening: Section<HardeningResult> = async (ctx) => {
  const conns = ctx.quick ? 1000 : 3000;
  const tries = ctx.quick ? 5 : 15;
  ctx.log(`\n5. Hardening: ${conns} connections holding partial frames; 128 connections guessing credentials, ${tries} logins`);
  const r: HardeningResult = { partial: null, floor: null, guessing: null, errors: [] };
  const mb = (b: number) => (b / 1048576).toFixed(1);
  const sources = loopbackSources(30, 1);
  try {
    r.partial = await partialFrames({ conns, sources });
    const p = r.partial;
    ctx.log(`  partial frames: RSS +${mb(p.held - p.baseline)} MB (${p.rssPerConn} B per connection, JS heap ${p.heapPerConn} B), ${mb(p.after - p.baseline)} MB above the baseline after they closed`);
  } catch (e) {
    r.errors.push(`partial frames: ${errorText(e)}`);
  }
  try {
    r.floor = await partialFrames({ conns, sources, script: `${FIXTURES}/floor-server.js` });
    ctx.log(`  the same against a bare node:net server: RSS +${mb(r.floor.held - r.floor.baseline)} MB (${r.floor.rssPerConn} B per connection)`);
  } catch (e) {
    r.errors.push(`floor: ${errorText(e)}`);
  }
  try {
    const g = await guessing({ conns: 128, sources: 50, tries, pace: 100 });
    r.guessing = {
      known: summary(g.known),
      fresh: summary(g.fresh),
      attack: g.attack,
      refusals: g.refusals,
      checksPerSecond: Math.round(((g.refusals.auth_failed ?? 0) / g.attack.seconds) * 10) / 10,
    };
    const k = r.guessing;
    ctx.log(
      `  guessing: ${Math.round(g.attack.tries / g.attack.seconds)} guesses/s, ${k.checksPerSecond} scrypt checks/s; known client ${k.known.granted}/${k.known.tries} (max ${k.known.maxMs} ms), new clients ${k.fresh.granted}/${k.fresh.tries} (max ${k.fresh.maxMs} ms)`,
    );
  } catch (e) {
    r.errors.push(`guessing: ${errorText(e)}`);
  }
  for (const e of r.errors) ctx.log(`  FAILED: ${e.split('\n')[0]}`);
  return r;
};
