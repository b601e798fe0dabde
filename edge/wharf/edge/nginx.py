"""Render a route table as nginx configuration, for deployments where nginx stays in front.

The rendered maps make the edge's decision (`routing.decide`) in nginx: `map "$request_method
$uri"` picks the capability with one regex per capability in table order (a map tries its
regexes in file order; `location` can neither test methods nor keep that order); the
repository comes from the path or the `/v2/auth` scope; globs become anchored regexes, the
percentage a `split_clients` on `org/repo` (the MurmurHash2 `routing.in_percent` computes);
`location /` then jumps to the chosen upstream's named location, which holds its timeouts.
What nginx cannot express is listed in `LIMITS`, which every rendered file repeats.
"""

from __future__ import annotations

import textwrap
from urllib.parse import urlsplit

# `as` re-exports them under mypy --strict: tests import them from this module.
from wharf.edge.nginx_regex import glob_regex as glob_regex
from wharf.edge.nginx_regex import org_regex as org_regex
from wharf.edge.nginx_regex import path_regex as path_regex
from wharf.edge.proxy import REQUEST_ID_RE
from wharf.edge.routing import REGISTRY_PATH_RE
from wharf.edge.table import Capability, RouteTable, Upstream

SCOPE_SLASHES = 16
"""How many `%2F` of an encoded `/v2/auth` scope the rendered maps decode."""
RETRY_AFTER_S = 1
LIMITS = (
    "Sticky uploads. A push started on one upstream finishes there only while this file"
    " stays the same: reload nginx with a new table when no push is running, or keep the"
    " Wharf edge behind nginx when uploads must survive a switch.",
    f"/v2/auth scopes are decoded for %3A and up to {SCOPE_SLASHES} %2F only (what clients"
    " send); a name with other escapes stays encoded and may hash to the other side.",
    "Paths are nginx's normalised $uri (/./ and /../ resolved); custom patterns run as PCRE,"
    " so Python-only regex syntax does not carry over.",
    "At max_conns nginx answers 502 (open source nginx has no queue) where the edge waits"
    " for a connection; upstream errors are answered in the registry format on every path.",
    "No decision reasons or per-capability metrics: log_format wharf_edge records the"
    " capability and upstream instead.",
    "In-process (inproc:) upstreams exist only inside `wharf serve`: routing to one is an"
    " error here.",
)


class NginxRenderError(ValueError):
    """The table uses something nginx cannot do (an in-process upstream)."""


def _q(text: str) -> str:
    """A double-quoted nginx token; nginx turns `\\\\` and `\\"` back into `\\` and `"`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _anchored(regex: str) -> str:
    r"""A map key: PCRE, whole string (`\z`, since `$` would also match before a newline)."""
    return _q(f"~^(?:{regex})\\z")


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def render_nginx(
    table: RouteTable,
    *,
    listen: str = "127.0.0.1:8080",
    server_name: str = "_",
    version: int | None = None,
    full: bool = False,
    workers: int | None = None,
) -> str:
    """nginx configuration implementing `table`, with `LIMITS` in its header comment.

    Sticky uploads in particular cannot be rendered: an upload started on one upstream
    finishes there only as long as the table does not change, so switch nginx to a new table
    when no push is running, or keep the Wharf edge behind nginx.

    The snippet goes inside `http {}`; `full=True` wraps it in a complete `nginx.conf`
    (events, temp paths relative to the `-p` prefix, no `pid`/`error_log`/`daemon`, which the
    command line sets). Output is deterministic: upstreams sorted, capabilities in table order.
    """
    used = _used_upstreams(table)
    lines = _header(table, version)
    lines += _upstream_blocks(table, used)
    lines += _shared_maps()
    if table.kill_switch is None:
        lines += _routing_maps(table)
    else:
        lines += [
            f"# Kill switch: every request goes to {table.kill_switch!r}.",
            f"map $request_method $wharf_upstream {{ default {_q(table.kill_switch)}; }}",
            'map $request_method $wharf_capability { default ""; }',
            "",
        ]
    lines += _server(table, used, listen, server_name)
    snippet = "\n".join(lines) + "\n"
    return _full_conf(snippet, workers) if full else snippet


def _used_upstreams(table: RouteTable) -> list[Upstream]:
    if table.kill_switch is not None:
        names = {table.kill_switch}
    else:
        names = {c.owner for c in table.capabilities}
        names |= {c.canary.upstream for c in table.capabilities if c.canary and c.registry}
    used = [table.upstreams[name] for name in sorted(names)]
    if inproc := [u.name for u in used if u.in_process]:
        raise NginxRenderError(
            f"upstreams {', '.join(inproc)} are in-process (inproc:): nginx cannot reach them;"
            " give them an http(s) URL"
        )
    return used


def _header(table: RouteTable, version: int | None) -> list[str]:
    named = f"route table version {version}" if version is not None else "route table"
    return [
        f"# Generated by `wharf edge render-nginx` from the {named}; do not edit, re-render.",
        "# Decision order, as the Wharf edge: kill switch; first capability matching method",
        "# and path; its canary (repository globs, organisations, percentage of org/repo);",
        "# the capability's owner. Re-render and `nginx -s reload` after each table change.",
        "#",
        "# NOT expressed here (the Wharf edge does these, nginx cannot):",
        *(
            line
            for limit in LIMITS
            for line in textwrap.wrap(limit, 88, initial_indent="# - ", subsequent_indent="#   ")
        ),
        "",
    ]


def _upstream_blocks(table: RouteTable, used: list[Upstream]) -> list[str]:
    lines: list[str] = []
    for upstream in used:
        parts = urlsplit(upstream.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        lines += [
            f"upstream wharf_{upstream.name} {{",
            f"    zone wharf_{upstream.name} 64k;  # max_conns counts across workers",
            f"    server {host}:{port} max_conns={upstream.max_connections};",
            f"    keepalive {upstream.max_connections};",
            "}",
        ]
    unused = sorted(set(table.upstreams) - {u.name for u in used})
    if unused:
        lines.append(f"# Not routed to by this table: {', '.join(unused)}.")
    return [*lines, ""]


def _shared_maps() -> list[str]:
    repository = REGISTRY_PATH_RE.pattern.replace("(?P<name>", "(?<wharf_path_repo>")
    # Up to SCOPE_SLASHES encoded slashes, most first: a map takes its first matching regex.
    decode = [
        _anchored("".join(f"(?<wharf_s{i}>.*?)%2[Ff]" for i in range(count)) + "(?<wharf_rest>.*)")
        + " "
        + _q("".join(f"$wharf_s{i}/" for i in range(count)) + "$wharf_rest")
        + ";"
        for count in range(SCOPE_SLASHES, -1, -1)
    ]
    return [
        "# A client's X-Request-ID is passed on when it looks like one (as the edge's rule).",
        "map $http_x_request_id $wharf_request_id {",
        f"    {_anchored(REQUEST_ID_RE.pattern.decode())} $http_x_request_id;",
        "    default $request_id;",
        "}",
        "# The repository: from a registry path, or from the first repository scope of a",
        "# token request, as routing.repository_of reads them.",
        "map $uri $wharf_repository {",
        f"    {_anchored(repository)} $wharf_path_repo;",
        f"    {_anchored('/v2/auth/*')} $wharf_scope_repository;",
        '    default "";',
        "}",
        "# The first `scope` argument that starts with repository:, whatever follows.",
        "map $args $wharf_scope {",
        f"    {_q('~^(?:[^&]*&)*?scope=repository(?::|%3[Aa])(?<wharf_scope_value>[^&]*)')}"
        " $wharf_scope_value;",
        '    default "";',
        "}",
        "# The name is everything before the scope's last colon (rpartition).",
        "map $wharf_scope $wharf_scope_encoded {",
        f"    {_q('~^(?<wharf_scope_name>.*)(?::|%3[Aa])')} $wharf_scope_name;",
        '    default "";',
        "}",
        "map $wharf_scope_encoded $wharf_scope_repository {",
        *(f"    {line}" for line in decode),
        '    default "";',
        "}",
        'log_format wharf_edge escape=json \'{"time":"$time_iso8601","request_id":'
        '"$wharf_request_id","method":"$request_method","uri":"$request_uri",'
        '"status":$status,"capability":"$wharf_capability","upstream":"$wharf_upstream",'
        '"duration_s":$request_time}\';',
        "",
    ]


def _routing_maps(table: RouteTable) -> list[str]:
    lines = [
        "# The capability: first match in table order (map regexes are tried in order).",
        'map "$request_method $uri" $wharf_capability {',
        *(
            f"    {_anchored(path_regex(c.match))} {_q(c.name)};  # {index}"
            for index, c in enumerate(table.capabilities)
        ),
        '    default "";',
        "}",
    ]
    targets: list[str] = []
    for index, capability in enumerate(table.capabilities):
        if capability.canary is not None and capability.registry:
            lines += _canary_maps(index, capability)
            targets.append(f"    {_q(capability.name)} $wharf_c{index}_upstream;")
        else:
            targets.append(f"    {_q(capability.name)} {_q(capability.owner)};")
    return [
        *lines,
        "# The upstream: the capability's owner, or its canary's verdict.",
        "map $wharf_capability $wharf_upstream {",
        *targets,
        '    default "";',
        "}",
        "",
    ]


def _canary_maps(index: int, capability: Capability) -> list[str]:
    canary = capability.canary
    assert canary is not None
    prefix = f"$wharf_c{index}"
    lines = [f"# {capability.name}: canary to {canary.upstream}, otherwise {capability.owner}."]
    flags: list[str] = []
    if canary.repositories:
        lines += [
            f"map $wharf_repository {prefix}_repo {{",
            *(f"    {_anchored(glob_regex(g))} 1;  # {g}" for g in canary.repositories),
            "    default 0;",
            "}",
        ]
        flags.append(f"{prefix}_repo")
    if canary.organisations:
        lines += [
            f"map $wharf_repository {prefix}_org {{",
            f"    {_anchored(org_regex(canary.organisations))} 1;",
            "    default 0;",
            "}",
        ]
        flags.append(f"{prefix}_org")
    if canary.percent >= 100:
        flags.append("1")
    elif canary.percent > 0:
        # split_clients hashes the string with MurmurHash2 in hundredths of a percent, which
        # is what routing.in_percent computes; the table allows no finer percentages.
        lines += [
            f'split_clients "$wharf_repository" {prefix}_percent {{',
            f"    {canary.percent:.2f}% 1;",
            "    * 0;",
            "}",
        ]
        flags.append(f"{prefix}_percent")
    key = "".join(flags)
    # Any rule that said 1, and a repository at all (none: the owner, like /v2/_catalog).
    lines += [
        f'map "{key}:$wharf_repository" {prefix}_upstream {{',
        f"    {_q('~^[01]*1[01]*:.')} {_q(canary.upstream)};",
        f"    default {_q(capability.owner)};",
        "}",
    ]
    return lines


def _server(table: RouteTable, used: list[Upstream], listen: str, name: str) -> list[str]:
    lines = [
        "server {",
        f"    listen {listen};",
        f"    server_name {name};",
        "    merge_slashes off;  # route on the path as sent, as the edge does",
        "    client_max_body_size 0;  # blobs have no size limit here",
        "    proxy_request_buffering off;  # stream bodies both ways",
        "    proxy_buffering off;",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";  # keep upstream connections alive',
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_set_header X-Forwarded-Host $http_host;",
        "    proxy_set_header X-Request-ID $wharf_request_id;",
        "    proxy_hide_header X-Request-ID;  # the client gets the id the upstream got",
        "    add_header X-Request-ID $wharf_request_id always;",
        "    proxy_redirect off;  # Location is left alone",
        "",
        "    location / {",
        "        # `location` cannot test methods or run the table's order, so the maps pick",
        "        # the upstream and this jumps to its named location (which has its timeouts).",
        "        recursive_error_pages on;  # the upstream locations' own error pages",
        "        error_page 418 = @wharf_to_$wharf_upstream;",
        "        return 418;",
        "    }",
        "    location @wharf_to_ {",
        "        return 404;  # no capability matched (tables built by hand only)",
        "    }",
    ]
    for upstream in used:
        parts = urlsplit(upstream.url)
        lines += [
            f"    location @wharf_to_{upstream.name} {{",
            f"        proxy_pass {parts.scheme}://wharf_{upstream.name}{parts.path}$request_uri;",
            f"        proxy_connect_timeout {_duration(upstream.connect_timeout)};",
            f"        proxy_read_timeout {_duration(upstream.read_timeout)};",
            f"        proxy_send_timeout {_duration(upstream.read_timeout)};",
        ]
        if parts.scheme == "https":
            lines += [
                "        proxy_ssl_server_name on;",
                f"        proxy_ssl_name {parts.hostname};",
            ]
        lines += ["        error_page 502 503 504 @wharf_upstream_error;", "    }"]
    body = '{"errors":[{"code":"UNAVAILABLE","message":"the upstream did not answer"}]}'
    lines += [
        "    location @wharf_upstream_error {",
        "        # error_page without `=` keeps the 502/503/504 status for this body.",
        "        default_type application/json;",
        f"        add_header Retry-After {RETRY_AFTER_S} always;",
        "        add_header X-Request-ID $wharf_request_id always;  # add_header is not inherited",
        f"        return 200 {_q(body)};",
        "    }",
    ]
    return [*lines, "}"]


def _full_conf(snippet: str, workers: int | None) -> str:
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    body = [f"{kind}_temp_path temp/{kind};" for kind in kinds] + snippet.splitlines()
    http = "\n".join(f"    {line}" if line else "" for line in ["access_log off;", *body])
    events = "events {\n    worker_connections 1024;\n}"
    return f"worker_processes {workers or 'auto'};\n{events}\nhttp {{\n{http}\n}}\n"
