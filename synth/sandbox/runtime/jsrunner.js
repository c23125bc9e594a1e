'use strict';
// The trusted JavaScript test runner, the twin of runner.py. Usage (inside the jail):
//   node jsrunner.js solution.js test_solution.js
// Tests are `test("name", () => { assertEqual(actual, expected); })`; `assert`,
// `require("assert")` and `require("node:assert")` give the same checked helpers. Each
// check records the plain-data encoding of its operands; the parent compares them again.
// A JSON-lines report goes to fd 3. Everything is captured before the solution loads.

const fs = require('fs');
const path = require('path');
const Module = require('module');

const apply = Reflect.apply;
const writeSync = fs.writeSync;
const getProto = Object.getPrototypeOf;
const keysOf = Object.keys;
const isArray = Array.isArray;
const isInteger = Number.isInteger;
const isFinite_ = Number.isFinite;
const isSafe = Number.isSafeInteger;
const charCodeAt = String.prototype.charCodeAt;
const numToString = Number.prototype.toString;
const bigToString = BigInt.prototype.toString;
const mapEntries = Map.prototype.entries;
const setValues = Set.prototype.values;
const iterNext = Object.getPrototypeOf(new Map().entries()).next;
const setIterNext = Object.getPrototypeOf(new Set().values()).next;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const exit = process.exit.bind(process);
const origRequire = Module.prototype.require;
const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const MapProto = Map.prototype;
const SetProto = Set.prototype;
const ErrorCtor = Error;
const promiseResolve = Promise.resolve.bind(Promise);
const bufferFrom = Buffer.from;

class NotPlain extends ErrorCtor {}
class AssertionFailure extends ErrorCtor {}
AssertionFailure.prototype.name = 'AssertionError';

const MAX_NODES = 200000;
const MAX_CHECKS = 1000;

function encode(v) {
  const budget = [MAX_NODES];
  return enc(v, 0, budget);
}

function enc(v, depth, budget) {
  if (--budget[0] < 0) throw new NotPlain('value too large to check');
  if (depth > 64) throw new NotPlain('value nested too deeply to check');
  const t = typeof v;
  if (v === null) return null;
  if (v === undefined) return { $undefined: 0 };
  if (t === 'boolean' || t === 'string') return v;
  if (t === 'number') {
    if (!isFinite_(v)) return { $float: v !== v ? 'nan' : v > 0 ? 'inf' : '-inf' };
    return isInteger(v) && isSafe(v) ? v : { $float: apply(numToString, v, []) };
  }
  if (t === 'bigint') return { $int: apply(bigToString, v, []) };
  if (t !== 'object') throw new NotPlain(`a ${t} is not plain data`);
  const proto = getProto(v);
  const d = depth + 1;
  if (proto === ArrayProto && isArray(v)) {
    const out = [];
    for (let i = 0; i < v.length; i++) out[i] = enc(v[i], d, budget);
    return out;
  }
  if (proto === MapProto) {
    const it = apply(mapEntries, v, []);
    const out = [];
    for (let r = apply(iterNext, it, []); !r.done; r = apply(iterNext, it, [])) {
      out[out.length] = [enc(r.value[0], d, budget), enc(r.value[1], d, budget)];
    }
    return { $dict: out };
  }
  if (proto === SetProto) {
    const it = apply(setValues, v, []);
    const out = [];
    for (let r = apply(setIterNext, it, []); !r.done; r = apply(setIterNext, it, [])) {
      out[out.length] = enc(r.value, d, budget);
    }
    return { $set: out };
  }
  if (proto === ObjectProto || proto === null) {
    const keys = keysOf(v);
    const out = [];
    for (let i = 0; i < keys.length; i++) out[i] = [keys[i], enc(v[keys[i]], d, budget)];
    return { $dict: out };
  }
  const name = (v && v.constructor && typeof v.constructor.name === 'string')
    ? v.constructor.name : 'object';
  throw new NotPlain(`a ${name} object is not plain data; compare plain values instead`);
}

function quote(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = apply(charCodeAt, s, [i]);
    if (c === 34) out += '\\"';
    else if (c === 92) out += '\\\\';
    else if (c < 32 || c > 126) out += '\\u' + ('0000' + apply(numToString, c, [16])).slice(-4);
    else out += s[i];
  }
  return out + '"';
}

function dumps(v) {
  if (v === null || v === undefined) return 'null';
  const t = typeof v;
  if (t === 'boolean') return v ? 'true' : 'false';
  if (t === 'number') return isFinite_(v) ? apply(numToString, v, []) : 'null';
  if (t === 'string') return quote(v);
  if (isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + dumps(v[i]);
    return out + ']';
  }
  const keys = keysOf(v);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    out += (i ? ',' : '') + quote(keys[i]) + ':' + dumps(v[keys[i]]);
  }
  return out + '}';
}

function emit(obj) {
  const line = dumps(obj) + '\n';
  const buf = apply(bufferFrom, Buffer, [line, 'utf8']);
  let off = 0;
  while (off < buf.length) off += writeSync(3, buf, off, buf.length - off);
}

function short(v) {
  let s;
  try { s = dumps(encode(v)); } catch (e) { s = '<' + typeof v + '>'; }
  return s.length > 200 ? s.slice(0, 197) + '...' : s;
}

// Deep equality on encoded trees (dicts compared as unordered key/value sets).
function same(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    return false;
  }
  if (isArray(a) !== isArray(b)) return false;
  if (isArray(a)) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  const ka = keysOf(a);
  const kb = keysOf(b);
  if (ka.length !== 1 || kb.length !== 1 || ka[0] !== kb[0]) return false;
  const tag = ka[0];
  const x = a[tag];
  const y = b[tag];
  if (tag === '$dict' || tag === '$set') {
    if (x.length !== y.length) return false;
    const used = [];
    for (let i = 0; i < x.length; i++) {
      let found = false;
      for (let j = 0; j < y.length; j++) {
        if (!used[j] && same(x[i], y[j])) { used[j] = true; found = true; break; }
      }
      if (!found) return false;
    }
    return true;
  }
  return same(x, y);
}

const state = { checks: [], current: null };

function record(entry) {
  if (state.checks.length < MAX_CHECKS) state.checks[state.checks.length] = entry;
  else if (state.checks.length < 10 * MAX_CHECKS) {
    state.checks[state.checks.length] = { op: entry.op, ok: entry.ok, big: true };
  }
}

function check(op, values, msg) {
  let encoded;
  try {
    encoded = [];
    for (let i = 0; i < values.length; i++) encoded[i] = encode(values[i]);
  } catch (e) {
    record({ op, ok: false, err: String(e && e.message) });
    throw new AssertionFailure('cannot check this value: ' + (e && e.message));
  }
  let ok;
  if (op === 'eq') ok = same(encoded[0], encoded[1]);
  else if (op === 'ne') ok = !same(encoded[0], encoded[1]);
  else if (op === 'true') ok = encoded[0] === true;
  else if (op === 'false') ok = encoded[0] === false;
  else ok = false;
  record({ op, ok, v: encoded });
  if (!ok) {
    let what;
    if (op === 'eq') what = `expected ${short(values[1])}, got ${short(values[0])}`;
    else if (op === 'ne') what = `expected a value other than ${short(values[1])}`;
    else what = `expected ${op}, got ${short(values[0])}`;
    throw new AssertionFailure(msg ? `${what} (${msg})` : what);
  }
}

function throwsCheck(fn, expected, msg) {
  let threw = false;
  let error;
  try { fn(); } catch (e) { threw = true; error = e; }
  let ok = threw;
  if (ok && typeof expected === 'function') ok = error instanceof expected;
  record({ op: 'throws', ok });
  if (!ok) {
    throw new AssertionFailure(msg || (threw ? `threw the wrong error: ${error}` : 'did not throw'));
  }
}

const helpers = {
  assertEqual: (a, b, msg) => check('eq', [a, b], msg),
  assertDeepEqual: (a, b, msg) => check('eq', [a, b], msg),
  assertNotEqual: (a, b, msg) => check('ne', [a, b], msg),
  assertTrue: (x, msg) => check('true', [x], msg),
  assertFalse: (x, msg) => check('false', [x], msg),
  assertThrows: (fn, expected, msg) => throwsCheck(fn, expected, msg),
};

function assertShim(x, msg) { check('true', [!!x], msg); }
assertShim.ok = assertShim;
assertShim.equal = helpers.assertEqual;
assertShim.strictEqual = helpers.assertEqual;
assertShim.deepEqual = helpers.assertEqual;
assertShim.deepStrictEqual = helpers.assertEqual;
assertShim.notEqual = helpers.assertNotEqual;
assertShim.notStrictEqual = helpers.assertNotEqual;
assertShim.notDeepStrictEqual = helpers.assertNotEqual;
assertShim.throws = (fn, expected, msg) => throwsCheck(fn, expected, msg);
assertShim.strict = assertShim;

const tests = [];
function test(name, fn) { tests[tests.length] = [String(name), fn]; }

const ASSERT_IDS = ['assert', 'node:assert', 'assert/strict', 'node:assert/strict'];
Module.prototype.require = function (id) {
  for (let i = 0; i < ASSERT_IDS.length; i++) if (ASSERT_IDS[i] === id) return assertShim;
  return apply(origRequire, this, [id]);
};

function errorText(e) {
  if (e === null || typeof e !== 'object') return String(e);
  const head = `${e.name || 'Error'}: ${e.message}`;
  const frames = String(e.stack || '').split('\n').filter(
    (l) => /solution/.test(l) && !/jsrunner/.test(l)).slice(0, 6);
  const text = [head, ...frames].join('\n');
  return text.length > 1500 ? text.slice(0, 1497) + '...' : text;
}

function status(e) {
  return e instanceof AssertionFailure || (e && e.name === 'AssertionError') ? 'failed' : 'error';
}

async function main() {
  const [solutionFile, testsFile] = process.argv.slice(2);
  emit({ t: 'start' });
  Object.assign(globalThis, helpers, { test, it: test, assert: assertShim });
  for (const [file, exportAll] of [[solutionFile, true], [testsFile, false]]) {
    try {
      const exported = require(path.resolve(file));
      if (exportAll && exported && typeof exported === 'object') {
        for (const k of keysOf(exported)) {
          if (!(k in helpers) && k !== 'test') globalThis[k] = exported[k];
        }
      } else if (exportAll && typeof exported === 'function' && exported.name) {
        globalThis[exported.name] = exported;
      }
    } catch (e) {
      emit({ t: 'module', file, error: errorText(e) });
      emit({ t: 'end', n: 0 });
      exit(0);
    }
  }
  let n = 0;
  for (const [name, fn] of tests) {
    emit({ t: 'begin', name });
    state.checks = [];
    const t0 = now();
    let st = 'passed';
    let error = '';
    try {
      await promiseResolve(fn());
    } catch (e) {
      st = status(e);
      error = errorText(e);
    }
    emit({ t: 'test', name, status: st, error, checks: state.checks,
      ms: Math.round((now() - t0) * 1000) / 1000 });
    n++;
  }
  emit({ t: 'end', n });
  exit(0);
}

main().catch((e) => { emit({ t: 'module', file: 'runner', error: errorText(e) }); exit(70); });
