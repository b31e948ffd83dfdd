"""Corpus for workers/http1.py: wire bytes and the events they must produce.

Every entry is fed four ways by test_http1.py (whole, line by line, byte by
byte, random seeded chunks) and must give the same events each time.

Entry keys:
  id       unique name (the pytest id)
  kind     "request" | "response"
  data     the bytes received on the connection
  events   expected events, with consecutive Data merged:
             ("head", {field: value})   only the listed fields are checked
             ("data", raw bytes)        Data.raw, concatenated
             ("end",)                   EndOfMessage
             ("paused",)                PAUSED (request side)
             ("tunnel", bytes)          switch_to_tunnel() + everything fed later
             ("closed",)                CLOSED
             ("error", status)          HttpError raised (and nothing after)
           A stream that ends waiting for more bytes ends the list as is.
  eof      feed b"" (EOF) after the data (default False)
  expect   responses: the (method, upgrade) pairs given to expect()
           (default one GET)
  on_paused  requests: what to do at each PAUSED: "tunnel" or "resume"
  opts     RequestParser/ResponseParser keyword arguments
"""

# ---------------------------------------------------------------- helpers

def H(**fields):
    return ("head", fields)


def D(raw):
    return ("data", raw)


END = ("end",)
PAUSED = ("paused",)
CLOSED = ("closed",)


def T(raw):
    return ("tunnel", raw)


def E(status):
    return ("error", status)


CORPUS = []


def req(id, data, events, **kw):
    CORPUS.append(dict(id=id, kind="request", data=data, events=events, **kw))


def resp(id, data, events, expect=((b"GET", False),), **kw):
    CORPUS.append(dict(id=id, kind="response", data=data, events=events,
                       expect=list(expect), **kw))


def pad_head(total, start=b"GET / HTTP/1.1\r\nHost: a\r\n", name=b"X-Pad"):
    """A request head of exactly ``total`` bytes (CRLFCRLF included)."""
    fixed = len(start) + len(name) + 2 + 4     # "name: " ... "\r\n" + "\r\n"
    return start + name + b": " + b"p" * (total - fixed) + b"\r\n\r\n"


G = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
POST5 = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"


def chunked_req(body, extra=b""):
    return (b"POST /up HTTP/1.1\r\nHost: x\r\n" + extra +
            b"Transfer-Encoding: chunked\r\n\r\n" + body)


def te(value, version=b"HTTP/1.1"):
    return (b"POST / " + version + b"\r\nHost: x\r\nTransfer-Encoding: " + value +
            b"\r\n\r\n0\r\n\r\n")


def cl(value):
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\nhello"


def with_header(line, version=b"HTTP/1.1"):
    """GET with Host and one extra raw header line (no CRLF)."""
    return b"GET / " + version + b"\r\nHost: x\r\n" + line + b"\r\n\r\n"


# ---------------------------------------------------------------- valid requests

req("get-minimal", G, [
    H(method=b"GET", target=b"/", path=b"/", query=b"", version=b"HTTP/1.1",
      headers=[(b"Host", b"example.com")], host=b"example.com", keep_alive=True,
      content_length=None, chunked=False, expect_continue=False, upgrade=None,
      body_mode="none"),
    END])

BROWSER = (
    b"GET /assets/app.js?v=123&x=%20y HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/index.html\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=abcdef0123456789; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n")
req("get-browser", BROWSER, [
    H(method=b"GET", target=b"/assets/app.js?v=123&x=%20y", path=b"/assets/app.js",
      query=b"v=123&x=%20y", host=b"www.example.com", keep_alive=True, upgrade=None,
      headers=[
          (b"Host", b"www.example.com"),
          (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
          (b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
          (b"Accept-Language", b"en-US,en;q=0.5"),
          (b"Accept-Encoding", b"gzip, deflate, br"),
          (b"Referer", b"https://www.example.com/index.html"),
          (b"Connection", b"keep-alive"),
          (b"Cookie", b"session=abcdef0123456789; theme=dark"),
          (b"Upgrade-Insecure-Requests", b"1"),
      ]),
    END])

req("http10-no-host", b"GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\nGET / HTTP/1.0\r\n\r\n", [
    H(version=b"HTTP/1.0", host=None, keep_alive=False, body_mode="none"),
    END, CLOSED])
req("http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
    b"GET /2 HTTP/1.0\r\n\r\n", [
    H(keep_alive=True), END, H(target=b"/2", keep_alive=False), END, CLOSED])
req("http10-no-headers", b"GET / HTTP/1.0\r\n\r\n", [H(headers=[], keep_alive=False), END, CLOSED])
req("connection-close-stops-parsing",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: x\r\n\r\n",
    [H(keep_alive=False), END, CLOSED])
req("connection-list-case-insensitive", with_header(b"Connection: foo, CLOSE , bar"),
    [H(keep_alive=False), END, CLOSED])
req("connection-two-fields", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: x-a\r\n"
    b"X-A: 1\r\nConnection: close\r\n\r\n", [H(keep_alive=False), END, CLOSED])
req("connection-keep-alive-in-11", with_header(b"Connection: keep-alive"),
    [H(keep_alive=True), END])
req("connection-empty-elements", with_header(b"Connection: ,, close,"),
    [H(keep_alive=False), END, CLOSED])
req("post-content-length", POST5, [
    H(method=b"POST", content_length=5, chunked=False, body_mode="length"),
    D(b"hello"), END])
req("content-length-zero", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + G, [
    H(content_length=0, body_mode="none"), END, H(method=b"GET"), END])
req("content-length-leading-zeros", cl(b"005"), [H(content_length=5), D(b"hello"), END])
req("content-length-identical-duplicates",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX: y\r\nContent-Length: 5\r\n\r\nhello",
    [H(content_length=5, headers=[(b"Host", b"x"), (b"Content-Length", b"5"), (b"X", b"y")]),
     D(b"hello"), END])
req("content-length-max-int64", cl(b"9223372036854775807"),
    [H(content_length=2 ** 63 - 1), D(b"hello")])
req("get-with-body", b"GET /q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    [H(method=b"GET", content_length=3), D(b"abc"), END])

CH1 = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
req("chunked-simple", chunked_req(CH1), [
    H(chunked=True, content_length=None, body_mode="chunked",
      headers=[(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")]),
    D(CH1), END])
CH_EXT = (b"5;name=value;flag\r\nhello\r\n"
          b"6 ; q = \"quo\\\"ted; x\" ;b=c\r\n world\r\n"
          b"0;last=\"\"\r\n\r\n")
req("chunked-extensions", chunked_req(CH_EXT), [H(chunked=True), D(CH_EXT), END])
CH_TR = b"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nX-Other:  d \r\n\r\n"
req("chunked-trailers", chunked_req(CH_TR), [H(chunked=True), D(CH_TR), END])
CH_HEX = b"A\r\n0123456789\r\na\r\nabcdefghij\r\n000F\r\n0123456789abcde\r\n00\r\n\r\n"
req("chunked-hex-case-and-zeros", chunked_req(CH_HEX), [H(), D(CH_HEX), END])
CH_16 = b"0000000000000003\r\nabc\r\n0\r\n\r\n"
req("chunked-16-hex-digits", chunked_req(CH_16), [H(), D(CH_16), END])
req("transfer-encoding-case-normalized",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
    [H(chunked=True, headers=[(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")]),
     D(b"0\r\n\r\n"), END])
req("transfer-encoding-ows-stripped",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\t chunked \t\r\n\r\n0\r\n\r\n",
    [H(chunked=True, headers=[(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")]),
     D(b"0\r\n\r\n"), END])
req("chunked-then-pipelined", chunked_req(b"1\r\na\r\n0\r\n\r\n") + G,
    [H(chunked=True), D(b"1\r\na\r\n0\r\n\r\n"), END, H(method=b"GET"), END])

req("pipeline-two", G + b"GET /two?x HTTP/1.1\r\nHost: example.com\r\n\r\n", [
    H(target=b"/"), END, H(target=b"/two?x", path=b"/two", query=b"x"), END])
req("pipeline-three", G + POST5 + chunked_req(b"2\r\nok\r\n0\r\n\r\n"), [
    H(method=b"GET"), END,
    H(method=b"POST", content_length=5), D(b"hello"), END,
    H(method=b"POST", chunked=True), D(b"2\r\nok\r\n0\r\n\r\n"), END])
req("pipeline-with-leftover-partial", G + b"GET /partial HTTP/1.1\r\nHo",
    [H(target=b"/"), END])

req("expect-100-continue",
    b"PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
    [H(method=b"PUT", expect_continue=True, content_length=4), D(b"data"), END])
req("expect-100-continue-case", with_header(b"Expect: 100-Continue"),
    [H(expect_continue=True), END])
req("expect-ignored-in-http10",
    b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", [H(expect_continue=False), END, CLOSED])
req("expect-other-ignored", with_header(b"Expect: something"), [H(expect_continue=False), END])

WS_HEAD = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
WS_FRAME = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
req("upgrade-websocket-tunnel", WS_HEAD + WS_FRAME, [
    H(upgrade=b"websocket", keep_alive=True, body_mode="none"), END, PAUSED, T(WS_FRAME)],
    on_paused=["tunnel"])
req("upgrade-refused-resume", WS_HEAD + G, [
    H(upgrade=b"websocket"), END, PAUSED, H(target=b"/"), END], on_paused=["resume"])
req("upgrade-without-connection-token", with_header(b"Upgrade: websocket"),
    [H(upgrade=None), END])
req("upgrade-ignored-in-http10",
    b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    [H(upgrade=None), END, CLOSED])
req("connect-tunnel",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\xa5", [
        H(method=b"CONNECT", target=b"example.com:443", path=b"", query=b"",
          host=b"example.com:443"),
        END, PAUSED, T(b"\x16\x03\x01\x00\xa5")], on_paused=["tunnel"])
req("connect-ipv6", b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
    [H(target=b"[2001:db8::1]:8443"), END, PAUSED, T(b"")], on_paused=["tunnel"])
req("options-asterisk", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    [H(method=b"OPTIONS", target=b"*", path=b"*", query=b""), END])
req("absolute-form", b"GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n",
    [H(target=b"http://Example.com:8080/a/b?c=d", path=b"/a/b", query=b"c=d",
       host=b"Example.com:8080", headers=[(b"Host", b"example.COM:8080")]), END])
req("absolute-form-host-differs", b"GET http://admin.example/secret HTTP/1.1\r\nHost: public.example\r\n\r\n",
    [E(400)])
req("absolute-form-host-other-port", b"GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    [E(400)])
req("absolute-form-default-port", b"GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    [H(host=b"a.example:80"), END])
req("absolute-form-https-default-port", b"GET https://a.example/ HTTP/1.1\r\nHost: A.example:443\r\n\r\n",
    [H(host=b"a.example"), END])
req("absolute-form-no-path", b"GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    [H(path=b"/", query=b"", host=b"example.com"), END])
req("absolute-form-http10-no-host", b"GET http://h/x HTTP/1.0\r\n\r\n",
    [H(host=b"h", path=b"/x"), END, CLOSED])
req("leading-empty-lines", b"\r\n\r\n" + G, [H(target=b"/"), END])
req("leading-empty-lines-between-requests", G + b"\r\n" + G, [H(), END, H(), END])
req("leading-empty-lines-max", b"\r\n" * 8 + G, [H(), END])
req("lowercase-method-is-a-token", b"get / HTTP/1.1\r\nHost: x\r\n\r\n", [H(method=b"get"), END])
req("extension-method", b"PROPFIND /dav HTTP/1.1\r\nHost: x\r\nDepth: 1\r\n\r\n",
    [H(method=b"PROPFIND"), END])
req("header-empty-value", with_header(b"X-Empty:"),
    [H(headers=[(b"Host", b"x"), (b"X-Empty", b"")]), END])
req("header-whitespace-only-value", with_header(b"X-Empty: \t "),
    [H(headers=[(b"Host", b"x"), (b"X-Empty", b"")]), END])
req("header-ows-stripped", with_header(b"X-A: \t value  with\tinner \t "),
    [H(headers=[(b"Host", b"x"), (b"X-A", b"value  with\tinner")]), END])
req("header-no-space-after-colon", with_header(b"X-A:v"),
    [H(headers=[(b"Host", b"x"), (b"X-A", b"v")]), END])
req("header-obs-text", with_header(b"X-Name: caf\xc3\xa9 \xff"),
    [H(headers=[(b"Host", b"x"), (b"X-Name", b"caf\xc3\xa9 \xff")]), END])
req("header-name-all-tchars", with_header(b"!#$%&'*+-.^_`|~09azAZ: v"),
    [H(headers=[(b"Host", b"x"), (b"!#$%&'*+-.^_`|~09azAZ", b"v")]), END])
req("header-colon-in-value", with_header(b"X-Url: http://a:b/c"),
    [H(headers=[(b"Host", b"x"), (b"X-Url", b"http://a:b/c")]), END])
req("host-with-port-and-ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    [H(host=b"[::1]:8080"), END])
req("host-empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", [H(host=b""), END])
req("host-lowercase-name", b"GET / HTTP/1.1\r\nhOsT: x\r\n\r\n", [H(host=b"x"), END])
req("target-with-percent-and-specials", b"GET /a%2Fb;p=1/c.d~e?q=a:b@c/d&e=$,!'()*+ HTTP/1.1\r\nHost: x\r\n\r\n",
    [H(path=b"/a%2Fb;p=1/c.d~e", query=b"q=a:b@c/d&e=$,!'()*+"), END])
req("query-empty-after-mark", b"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",
    [H(path=b"/a", query=b""), END])

BIG = bytes(range(256)) * 300          # 76800 bytes, every byte value
req("large-body-content-length",
    b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 76800\r\n\r\n" + BIG + G,
    [H(content_length=76800), D(BIG), END, H(method=b"GET"), END])
BIG_CH = b"".join(b"%x\r\n" % len(BIG[i:i + 7000]) + BIG[i:i + 7000] + b"\r\n"
                  for i in range(0, len(BIG), 7000)) + b"0\r\n\r\n"
req("large-body-chunked", chunked_req(BIG_CH), [H(chunked=True), D(BIG_CH), END])
req("head-exactly-max-head", pad_head(64), [H(), END], opts={"max_head": 64})
req("head-default-limit-ok", pad_head(16384), [H(), END])
req("eof-between-requests", G, [H(), END, CLOSED], eof=True)
req("eof-on-empty-connection", b"", [CLOSED], eof=True)
req("eof-after-empty-line", b"\r\n", [CLOSED], eof=True)

# ---------------------------------------------------------------- invalid requests

# Content-Length / Transfer-Encoding (smuggling)
req("cl-and-te", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [E(400)])
req("te-and-cl", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n", [E(400)])
req("cl-and-invalid-te", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: xchunked\r\n\r\nhello", [E(400)])
req("cl-two-different", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Content-Length: 6\r\n\r\nhello!", [E(400)])
req("cl-list-same", cl(b"5, 5"), [E(400)])
req("cl-list-different", cl(b"5,6"), [E(400)])
req("cl-plus-sign", cl(b"+5"), [E(400)])
req("cl-minus-sign", cl(b"-5"), [E(400)])
req("cl-inner-space", cl(b"5 5"), [E(400)])
req("cl-hex", cl(b"0x5"), [E(400)])
req("cl-non-digit", cl(b"five"), [E(400)])
req("cl-empty", cl(b""), [E(400)])
req("cl-unicode-digit", cl(b"\xd9\xa5"), [E(400)])
req("cl-underscore", cl(b"1_0"), [E(400)])
req("cl-2-pow-63", cl(b"9223372036854775808"), [E(400)])
req("cl-huge", cl(b"99999999999999999999999999999999"), [E(400)])
req("te-xchunked", te(b"xchunked"), [E(400)])
req("te-chunked-identity", te(b"chunked, identity"), [E(400)])
req("te-identity", te(b"identity"), [E(400)])
req("te-gzip-chunked", te(b"gzip, chunked"), [E(501)])
req("te-deflate-chunked", te(b"deflate,chunked"), [E(501)])
req("te-gzip-only", te(b"gzip"), [E(400)])
req("te-chunked-twice", te(b"chunked, chunked"), [E(400)])
req("te-two-fields", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [E(400)])
req("te-two-fields-gzip-chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [E(400)])
req("te-space-before-colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
    b"\r\n0\r\n\r\n", [E(400)])
req("te-tab-before-colon", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n"
    b"\r\n0\r\n\r\n", [E(400)])
req("te-tab-inside-list", te(b"gzip,\tchunked"), [E(400)])
req("te-tab-inside-word", te(b"chun\tked"), [E(400)])
req("te-space-inside-word", te(b"chun ked"), [E(400)])
req("te-vertical-tab", te(b"\x0bchunked"), [E(400)])
req("te-vertical-tab-after", te(b"chunked\x0b"), [E(400)])
req("te-form-feed", te(b"chunked\x0c"), [E(400)])
req("te-empty", te(b""), [E(400)])
req("te-empty-element", te(b", chunked"), [E(400)])
req("te-parameter", te(b"chunked;q=1"), [E(400)])
req("te-quoted", te(b"\"chunked\""), [E(400)])
req("te-in-http10", te(b"chunked", b"HTTP/1.0"), [E(400)])
req("te-obs-fold", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n"
    b"\r\n0\r\n\r\n", [E(400)])
req("te-nul", te(b"chunked\x00"), [E(400)])
req("te-cr-inside", te(b"chun\rked"), [E(400)])

# chunked framing
req("chunk-size-non-hex", chunked_req(b"g\r\nxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-empty", chunked_req(b"\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-17-digits", chunked_req(b"00000000000000005\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-too-big", chunked_req(b"fffffffffffffffff\r\n"), [H(), E(400)])
req("chunk-size-minus", chunked_req(b"-5\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-plus", chunked_req(b"+5\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-0x", chunked_req(b"0x5\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-underscore", chunked_req(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-leading-space", chunked_req(b" 5\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-trailing-space", chunked_req(b"5 \r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-bare-lf", chunked_req(b"5\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-size-bare-cr", chunked_req(b"5\rhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-data-no-crlf", chunked_req(b"5\r\nhelloXX0\r\n\r\n"), [H(), D(b"5\r\nhello"), E(400)])
req("chunk-data-too-long", chunked_req(b"3\r\nhello\r\n0\r\n\r\n"), [H(), D(b"3\r\nhel"), E(400)])
req("chunk-data-bare-lf", chunked_req(b"5\r\nhello\n0\r\n\r\n"), [H(), D(b"5\r\nhello"), E(400)])
req("chunk-data-cr-only", chunked_req(b"5\r\nhello\rX0\r\n\r\n"), [H(), D(b"5\r\nhello"), E(400)])
req("chunk-second-size-bad", chunked_req(b"1\r\na\r\nz\r\n"), [H(), D(b"1\r\na\r\n"), E(400)])
req("chunk-ext-space-in-name", chunked_req(b"5;a b\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-bad-char", chunked_req(b"5;a=b@c\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-empty-name", chunked_req(b"5;\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-empty-value", chunked_req(b"5;a=\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-nul", chunked_req(b"5;a\x00\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-unterminated-quote", chunked_req(b"5;a=\"b\r\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-ext-bare-lf", chunked_req(b"5;a=b\nhello\r\n0\r\n\r\n"), [H(), E(400)])
req("chunk-line-too-long", chunked_req(b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n"),
    [H(), E(400)])
req("last-chunk-bare-lf", chunked_req(b"0\n\r\n"), [H(), E(400)])
req("last-chunk-then-bare-lf", chunked_req(b"0\r\n\n"), [H(), D(b"0\r\n"), E(400)])
req("last-chunk-then-bare-cr", chunked_req(b"0\r\n\rX"), [H(), D(b"0\r\n"), E(400)])
req("trailer-bare-lf", chunked_req(b"0\r\nX: y\n\r\n"), [H(), D(b"0\r\n"), E(400)])
req("trailer-obs-fold", chunked_req(b"0\r\nX: y\r\n z\r\n\r\n"), [H(), D(b"0\r\n"), E(400)])
req("trailer-bad-name", chunked_req(b"0\r\nX y: z\r\n\r\n"), [H(), D(b"0\r\n"), E(400)])
req("trailer-content-length", chunked_req(b"0\r\nContent-Length: 5\r\n\r\n"),
    [H(), D(b"0\r\n"), E(400)])
req("trailer-transfer-encoding", chunked_req(b"0\r\ntransfer-encoding: chunked\r\n\r\n"),
    [H(), D(b"0\r\n"), E(400)])
req("trailer-too-large", chunked_req(b"0\r\nX: " + b"a" * 200 + b"\r\n\r\n"),
    [H(), D(b"0\r\n"), E(400)], opts={"max_head": 128})

# header syntax
req("obs-fold-space", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", [E(400)])
req("obs-fold-tab", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", [E(400)])
req("whitespace-before-first-header", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", [E(400)])
req("value-nul", with_header(b"X-A: a\x00b"), [E(400)])
req("value-cr", with_header(b"X-A: a\rb"), [E(400)])
req("value-bare-lf", with_header(b"X-A: a\nb"), [E(400)])
req("value-ctl", with_header(b"X-A: a\x01b"), [E(400)])
req("value-del", with_header(b"X-A: a\x7fb"), [E(400)])
req("value-escape", with_header(b"X-A: \x1b[31m"), [E(400)])
req("name-space-inside", with_header(b"X A: b"), [E(400)])
req("name-space-before-colon", with_header(b"Content-Length : 5"), [E(400)])
req("name-non-token", with_header(b"X@A: b"), [E(400)])
req("name-parenthesis", with_header(b"X(A): b"), [E(400)])
req("name-obs-text", with_header(b"X\xe9: b"), [E(400)])
req("name-nul", with_header(b"X\x00A: b"), [E(400)])
req("name-empty", with_header(b": b"), [E(400)])
req("line-without-colon", with_header(b"NoColonHere"), [E(400)])
req("bare-lf-line-endings", b"GET / HTTP/1.1\nHost: x\n\n", [E(400)])
req("bare-lf-one-header", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", [E(400)])
req("bare-lf-request-line", b"GET / HTTP/1.1\nHost: x\r\n\r\n", [E(400)])
req("bare-cr-line-ending", b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", [E(400)])

# Host
req("host-missing-http11", b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", [E(400)])
req("host-missing-no-headers", b"GET / HTTP/1.1\r\n\r\n", [E(400)])
req("host-twice", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", [E(400)])
req("host-twice-case", b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", [E(400)])
req("host-twice-http10", b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", [E(400)])
req("host-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", [E(400)])
req("host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", [E(400)])
req("host-userinfo", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", [E(400)])

# version
req("version-2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", [E(505)])
req("version-1-2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", [E(505)])
req("version-0-9", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", [E(505)])
req("version-h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [E(505)])
req("version-505-loses-to-bad-header", b"GET / HTTP/2.0\r\nHost: x\r\nX y: z\r\n\r\n", [E(400)])
req("version-lowercase", b"GET / http/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("version-trailing-space", b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", [E(400)])
req("version-no-minor", b"GET / HTTP/1\r\nHost: x\r\n\r\n", [E(400)])
req("version-two-digits", b"GET / HTTP/11\r\nHost: x\r\n\r\n", [E(400)])
req("version-missing", b"GET /\r\nHost: x\r\n\r\n", [E(400)])
req("version-garbage", b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", [E(400)])

# request line
req("line-double-space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("line-tab-separator", b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("line-leading-space", b" GET / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("line-only-method", b"GET\r\nHost: x\r\n\r\n", [E(400)])
req("line-empty-method", b" / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("method-bad-char", b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("method-bad-char-and-bad-version", b"G@T / HTTP/2.0\r\nHost: x\r\n\r\n", [E(400)])
req("target-control-char", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-del", b"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-utf8", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-fragment", b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-relative", b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-asterisk-not-options", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("target-authority-not-connect", b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("connect-origin-form", b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("connect-no-port", b"CONNECT example.com HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("connect-absolute-form", b"CONNECT http://example.com:80/ HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("absolute-userinfo", b"GET http://user:pw@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("absolute-ftp", b"GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("absolute-empty-authority", b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, [E(400)])
req("leading-bare-lf", b"\n" + G, [E(400)])
req("leading-bare-cr", b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", [E(400)])
req("too-many-leading-empty-lines", b"\r\n" * 9 + G, [E(400)])
req("junk-between-requests", G + b"xx\x01" + G, [H(), END, E(400)])

# sizes
req("head-over-max-head", pad_head(65), [E(431)], opts={"max_head": 64})
req("head-over-default-limit", pad_head(16385), [E(431)])
req("head-huge-no-end", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 20000, [E(431)])
req("request-line-too-long", b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", [E(414)])
req("too-many-headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100 + b"\r\n",
    [E(431)])
req("max-headers-ok", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 99 + b"\r\n",
    [H(), END])

# premature EOF
req("eof-inside-head", b"GET / HTTP/1.1\r\nHost: x\r\n", [E(400)], eof=True)
req("eof-inside-body", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
    [H(), D(b"hello"), E(400)], eof=True)
req("eof-inside-chunked", chunked_req(b"5\r\nhel"), [H(), D(b"5\r\nhel"), E(400)], eof=True)
req("eof-before-trailers-end", chunked_req(b"0\r\nX: y\r\n"), [H(), D(b"0\r\n"), E(400)],
    eof=True)


# ---------------------------------------------------------------- valid responses

resp("200-content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello", [
    H(status=200, reason=b"OK", version=b"HTTP/1.1", content_length=5, keep_alive=True,
      body_mode="length", interim=False, headers=[(b"Content-Length", b"5"), (b"Server", b"s")]),
    D(b"hello"), END])
RCH = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nExpires: never\r\n\r\n"
resp("200-chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + RCH,
     [H(chunked=True, body_mode="chunked"), D(RCH), END])
resp("200-gzip-chunked-accepted",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     [H(chunked=True, headers=[(b"Transfer-Encoding", b"gzip, chunked")]),
      D(b"0\r\n\r\n"), END])
resp("head-response-no-body",
     b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     [H(content_length=1234, body_mode="none"), END,
      H(content_length=2, body_mode="length"), D(b"ok"), END],
     expect=[(b"HEAD", False), (b"GET", False)])
resp("head-response-chunked-no-body",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     [H(chunked=True, body_mode="none"), END], expect=[(b"HEAD", False)])
resp("204-no-body", b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     [H(status=204, body_mode="none"), END, H(status=200, body_mode="none"), END],
     expect=[(b"DELETE", False), (b"GET", False)])
resp("204-with-content-length-zero", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
     [H(status=204, body_mode="none"), END])
resp("304-with-content-length", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 500\r\nETag: \"x\"\r\n\r\n",
     [H(status=304, content_length=500, body_mode="none"), END])
resp("close-delimited", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
     [H(keep_alive=False, body_mode="close"), D(b"until the end"), END, CLOSED], eof=True)
resp("close-delimited-http10", b"HTTP/1.0 200 OK\r\n\r\nold server",
     [H(version=b"HTTP/1.0", keep_alive=False, body_mode="close"), D(b"old server"), END, CLOSED],
     eof=True)
resp("close-delimited-empty", b"HTTP/1.1 200 OK\r\n\r\n",
     [H(body_mode="close"), END, CLOSED], eof=True)
resp("close-delimited-waits", b"HTTP/1.1 200 OK\r\n\r\nsome",
     [H(body_mode="close"), D(b"some")])
resp("100-continue-then-200",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     [H(status=100, interim=True, body_mode="none"), H(status=200, interim=False),
      D(b"ok"), END], expect=[(b"PUT", False)])
resp("103-early-hints-then-204",
     b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
     [H(status=103, interim=True), H(status=100), H(status=204), END])
resp("101-switching-protocols",
     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05Hello",
     [H(status=101, upgrade=b"websocket", body_mode="tunnel"), T(b"\x81\x05Hello")],
     expect=[(b"GET", True)])
resp("101-after-100", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"
     b"Upgrade: h2c\r\nConnection: upgrade\r\n\r\n", [H(status=100), H(status=101), T(b"")],
     expect=[(b"GET", True)])
resp("upgrade-request-answered-200", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
     [H(status=200, body_mode="length"), D(b"x"), END], expect=[(b"GET", True)])
resp("connect-200-tunnel", b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
     [H(status=200, reason=b"Connection established", body_mode="tunnel"), T(b"\x16\x03\x03")],
     expect=[(b"CONNECT", False)])
resp("connect-407-has-body", b"HTTP/1.1 407 Proxy Authentication Required\r\n"
     b"Content-Length: 3\r\n\r\nnop", [H(status=407, body_mode="length"), D(b"nop"), END],
     expect=[(b"CONNECT", False)])
resp("reason-empty", b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", [H(reason=b""), END])
resp("reason-missing-space-tolerated", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
     [H(status=200, reason=b""), END])
resp("reason-with-spaces-and-obs-text", b"HTTP/1.1 404 Not \tFound \xe9\r\nContent-Length: 0\r\n\r\n",
     [H(status=404, reason=b"Not \tFound \xe9"), END])
resp("status-599", b"HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n", [H(status=599), END])
resp("connection-close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nokJUNK",
     [H(keep_alive=False), D(b"ok"), END, CLOSED])
resp("r-http10-keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
     [H(keep_alive=True), D(b"ok"), END])
resp("pipelined-responses",
     b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
     b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc",
     [H(status=200), D(b"a"), END, H(status=404), D(b"1\r\nb\r\n0\r\n\r\n"), END,
      H(status=200), D(b"c"), END], expect=[(b"GET", False)] * 3)
resp("large-response-body", b"HTTP/1.1 200 OK\r\nContent-Length: 76800\r\n\r\n" + BIG,
     [H(content_length=76800), D(BIG), END])
resp("leading-empty-line", b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [H(), END])

# ---------------------------------------------------------------- invalid responses

resp("r-status-4-digits", b"HTTP/1.1 2000 OK\r\n\r\n", [E(502)])
resp("r-status-2-digits", b"HTTP/1.1 20 OK\r\n\r\n", [E(502)])
resp("r-status-letters", b"HTTP/1.1 abc OK\r\n\r\n", [E(502)])
resp("r-status-600", b"HTTP/1.1 600 OK\r\n\r\n", [E(502)])
resp("r-status-099", b"HTTP/1.1 099 OK\r\n\r\n", [E(502)])
resp("r-status-missing", b"HTTP/1.1\r\n\r\n", [E(502)])
resp("r-double-space", b"HTTP/1.1  200 OK\r\n\r\n", [E(502)])
resp("r-version-2", b"HTTP/2 200 OK\r\n\r\n", [E(502)])
resp("r-version-lowercase", b"http/1.1 200 OK\r\n\r\n", [E(502)])
resp("r-not-http", b"ICY 200 OK\r\n\r\n", [E(502)])
resp("r-reason-ctl", b"HTTP/1.1 200 O\x01K\r\n\r\n", [E(502)])
resp("r-cl-and-te", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", [E(502)])
resp("r-cl-differ", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     [E(502)])
resp("r-cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", [E(502)])
resp("r-cl-sign", b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc", [E(502)])
resp("r-te-gzip-only", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", [E(502)])
resp("r-te-chunked-not-final", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     [E(502)])
resp("r-te-in-http10", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [E(502)])
resp("r-te-space-before-colon", b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n",
     [E(502)])
resp("r-obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", [E(502)])
resp("r-bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", [E(502)])
resp("r-bad-chunk-size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     [H(), E(502)])
resp("r-chunk-no-crlf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc",
     [H(), D(b"2\r\nab"), E(502)])
resp("r-chunk-bare-lf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n",
     [H(), E(502)])
resp("r-head-too-large", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20000 + b"\r\n\r\n", [E(502)])
resp("r-no-request", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [E(502)], expect=[])
resp("r-extra-response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [H(), END, E(502)])
resp("r-101-not-requested", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
     b"Connection: upgrade\r\n\r\n", [E(502)])
resp("r-eof-inside-head", b"HTTP/1.1 200 OK\r\nContent-Le", [E(502)], eof=True)
resp("r-eof-inside-body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
     [H(), D(b"abc"), E(502)], eof=True)
resp("r-eof-inside-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
     [H(), D(b"3\r\nab"), E(502)], eof=True)
resp("r-eof-before-any-byte", b"", [CLOSED], eof=True)
resp("r-trailer-content-length", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\nContent-Length: 1\r\n\r\n", [H(), D(b"0\r\n"), E(502)])
