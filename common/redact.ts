// A URL as logs and messages may show it: the password of its userinfo replaced, never printed.
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '***';
    return u.toString();
  } catch {
    // not a URL: show nothing of it rather than a secret it may hold
    return '(a URL that does not parse)';
  }
}
