// A person at a browser, for the dev issuer's login: follows the authorization URL's redirects with
// cookies, clicks the demo user on the sign-in page (a form post), and stops at the redirect back to
// the client, whose `code` it returns. What an MCP host opens in a real browser, done over HTTP.
export async function devBrowserLogin(
  authorizationUrl: URL,
  user: string,
  redirectPrefix: string,
): Promise<string> {
  const cookies = new Map<string, string>();
  const cookieHeader = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = authorizationUrl;
  let post: string | null = null;
  for (let hop = 0; hop < 12; hop++) {
    const res = await fetch(url, {
      redirect: 'manual',
      method: post === null ? 'GET' : 'POST',
      headers: {
        cookie: cookieHeader(),
        ...(post === null ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      ...(post === null ? {} : { body: post }),
    });
    post = null;
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const location = res.headers.get('location');
    if (res.status === 200 && (res.headers.get('content-type') ?? '').startsWith('text/html')) {
      const page = await res.text();
      const action = /<form method="post" action="([^"]+)"/.exec(page)?.[1];
      if (!action || !page.includes(`value="${user}"`)) throw new Error(`no sign-in button for ${user}`);
      url = new URL(action.replace(/&#38;/g, '&'), url);
      post = new URLSearchParams({ user }).toString();
      continue;
    }
    await res.body?.cancel();
    if (res.status < 300 || res.status >= 400 || location === null)
      throw new Error(`login stopped at HTTP ${res.status} (${url.pathname})`);
    const next = new URL(location, url);
    if (next.href.startsWith(redirectPrefix)) {
      const code = next.searchParams.get('code');
      if (!code)
        throw new Error(`login came back without a code: ${next.searchParams.get('error_description')}`);
      return code;
    }
    url = next;
  }
  throw new Error('login did not come back to the client');
}
