// What an ES5 engine needs of a script, checked two ways: its syntax (parsed with Babel's
// parser, every node that ES2015 or later introduced reported), and its library (a vm
// context from which the ES2015+ built-ins are deleted, so that a script relying on one
// fails there).
import { createRequire } from 'node:module';
import vm from 'node:vm';

interface Node {
  type: string;
  loc?: { start: { line: number; column: number } };
  [k: string]: unknown;
}

const { parseSync } = createRequire(import.meta.url)('@babel/core') as {
  parseSync(code: string, options: object): Node;
};

/** Node types that do not exist in ES5. */
const NOT_ES5 = new Set([
  'ArrowFunctionExpression',
  'ClassDeclaration',
  'ClassExpression',
  'TemplateLiteral',
  'TaggedTemplateExpression',
  'ForOfStatement',
  'SpreadElement',
  'RestElement',
  'ObjectPattern',
  'ArrayPattern',
  'AssignmentPattern',
  'AwaitExpression',
  'YieldExpression',
  'MetaProperty',
  'Super',
  'Import',
  'ImportExpression',
  'ImportDeclaration',
  'ExportNamedDeclaration',
  'ExportDefaultDeclaration',
  'ExportAllDeclaration',
  'OptionalMemberExpression',
  'OptionalCallExpression',
  'BigIntLiteral',
  'StaticBlock',
]);

/** Why `n` is not ES5, or null. */
function why(n: Node): string | null {
  if (NOT_ES5.has(n.type)) return n.type;
  switch (n.type) {
    case 'VariableDeclaration':
      return n.kind === 'var' ? null : `${n.kind} declaration`;
    case 'FunctionDeclaration':
    case 'FunctionExpression':
    case 'ObjectMethod':
      if (n.generator) return 'generator';
      if (n.async) return 'async function';
      if (n.type === 'ObjectMethod' && n.kind === 'method') return 'method shorthand';
      if (n.type === 'ObjectMethod' && n.computed) return 'computed key';
      return null;
    case 'ObjectProperty':
      return n.shorthand ? 'shorthand property' : n.computed ? 'computed key' : null;
    case 'BinaryExpression':
      return n.operator === '**' ? 'exponent operator' : null;
    case 'AssignmentExpression':
      return ['**=', '??=', '||=', '&&='].includes(n.operator as string) ? `${n.operator} assignment` : null;
    case 'LogicalExpression':
      return n.operator === '??' ? 'nullish coalescing' : null;
    case 'RegExpLiteral':
      return /[uysdv]/.test(n.flags as string) ? `regular expression flag in /${n.pattern}/${n.flags}` : null;
    case 'NumericLiteral': {
      const raw = (n.extra as { raw?: string } | undefined)?.raw ?? '';
      return /^0[bBoO]|_/.test(raw) ? `numeric literal ${raw}` : null;
    }
    case 'StringLiteral': {
      const raw = (n.extra as { raw?: string } | undefined)?.raw ?? '';
      return raw.includes('\\u{') ? 'code point escape' : null;
    }
  }
  return null;
}

/**
 * The ES2015+ syntax in `code`, as "line:column what" (empty when it is ES5). It must also
 * parse as a script: import and export are module syntax.
 */
export function es5Violations(code: string): string[] {
  const ast = parseSync(code, { sourceType: 'script', babelrc: false, configFile: false });
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== 'object' || typeof (v as Node).type !== 'string') return;
    const n = v as Node;
    const w = why(n);
    if (w) out.push(`${n.loc?.start.line}:${n.loc?.start.column} ${w}`);
    for (const k of Object.keys(n)) if (k !== 'loc' && k !== 'extra' && k !== 'leadingComments' && k !== 'trailingComments') walk(n[k]);
  };
  walk(ast);
  return out;
}

/** The built-ins of ES2015 and later that the ES5 context deletes. */
export const ES2015_GLOBALS = ['Symbol', 'Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry', 'Promise', 'Reflect', 'Proxy', 'BigInt', 'BigInt64Array', 'BigUint64Array', 'DataView', 'globalThis', 'Intl', 'SharedArrayBuffer', 'Atomics', 'AggregateError'];

/**
 * A vm context holding the ES5 built-ins and typed arrays (Espruino has them; so do ES5-era
 * engines that predate the rest of ES2015), with every name of ES2015_GLOBALS deleted and
 * the ES2015 statics most often used by accident (Object.assign, Array.from...) too.
 */
export function es5Context(globals: Record<string, unknown> = {}): vm.Context {
  const ctx = vm.createContext({ ...globals });
  vm.runInContext(
    `(function (g) {
       var names = ${JSON.stringify(ES2015_GLOBALS)};
       for (var i = 0; i < names.length; i++) delete g[names[i]];
       delete Object.assign; delete Object.entries; delete Object.values; delete Object.is;
       delete Object.getOwnPropertySymbols; delete Object.setPrototypeOf;
       delete Array.from; delete Array.of; delete Array.prototype.find; delete Array.prototype.findIndex;
       delete Array.prototype.includes; delete Array.prototype.fill; delete Array.prototype.entries;
       delete Array.prototype.keys; delete Array.prototype.values;
       delete String.prototype.includes; delete String.prototype.startsWith; delete String.prototype.endsWith;
       delete String.prototype.repeat; delete String.prototype.padStart; delete String.prototype.padEnd;
       delete String.prototype.codePointAt; delete String.fromCodePoint;
       delete Number.isInteger; delete Number.isFinite; delete Number.isNaN; delete Math.trunc; delete Math.sign;
       delete Math.imul; delete Math.clz32; delete Math.log2; delete Math.hypot;
     })(this);`,
    ctx,
  );
  return ctx;
}

/** The names of ES2015_GLOBALS that `ctx` still has (none after es5Context). */
export function leftIn(ctx: vm.Context): string[] {
  return ES2015_GLOBALS.filter((n) => vm.runInContext(`typeof ${n} !== 'undefined'`, ctx));
}
