// Command-line checks shared by simplevpn-server and simplevpn-client.

/**
 * The first option in mri's result that is neither a known long option nor a known short
 * alias, spelled as the user typed it (`--frobnicate`, `--no-frob`, `-x`), or null. mri
 * accepts anything, so this is where a mistyped flag becomes exit status 2 rather than a
 * silently ignored setting.
 */
export function unknownOption(args: Record<string, unknown>, known: string[], argv: string[]): string | null {
  const ok = new Set(known);
  for (const k of Object.keys(args)) {
    if (k === '_' || ok.has(k)) continue;
    const typed = argv.find((a) => a === `--${k}` || a === `--no-${k}` || a.startsWith(`--${k}=`) || a.startsWith(`--no-${k}=`));
    return typed ? typed.split('=')[0] : (k.length === 1 ? '-' : '--') + k;
  }
  return null;
}
