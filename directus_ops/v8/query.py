"""Rewrite a Directus v8 API URL (or bare query string) into its Directus 9+ form.

``rewrite_query("/_/items/articles?filter[author.name][like]=Ann&q=alps")`` returns
``/items/articles?filter[author][name][_contains]=Ann&search=alps`` plus notes. The input is parsed the way
v8's PHP did (``parse_str``: ``a[b][]`` nesting, a repeated key keeps its last value) and interpreted with
v8's own rules (read from v8.8.1's RelationalTableGateway): one operator per filter condition, ``logical=or``
starting a new OR branch of a left-to-right AND/OR chain, ``like`` escaping ``%``/``_``, ``rlike`` raw.

Output form: bracket keys stay readable (``filter[a][b][_eq]``: ``[`` ``]`` ``(`` ``)`` are left unescaped),
values are percent-encoded except ``, * $ : / @ ! ( ) - . _ ~`` (so CSV lists and ``$NOW`` stay readable);
space is ``%20``, never ``+``. Directus parses that with ``qs`` (depth 10, arrays up to index 20): a filter
deeper or wider than that is emitted as JSON (``filter={...}``) instead, with a note.

Notes come in two kinds: ``note`` (what changed, nothing lost) and ``warning`` (the v9 query does not do
exactly what the v8 one did: something was dropped or has no v9 form).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ..errors import NotAV8Query


@dataclass(frozen=True)
class Note:
    kind: Literal["note", "warning"]
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


@dataclass(frozen=True)
class RewriteResult:
    v9: str  # the rewritten URL, path?query, or query string (same shape as the input)
    notes: tuple[Note, ...] = ()

    @property
    def warnings(self) -> list[str]:
        return [n.text for n in self.notes if n.kind == "warning"]

    @property
    def complete(self) -> bool:
        """True when the v9 query means what the v8 one did (no warning)."""
        return not self.warnings


# -- v8 vocabulary ---------------------------------------------------------------------------------------------
# v8 operator (incl. its symbolic aliases) -> v9 operator. rlike/nrlike, has/nhas, all are handled apart.
OPERATORS: dict[str, str] = {
    "eq": "_eq", "=": "_eq",
    "neq": "_neq", "!=": "_neq", "<>": "_neq",
    "lt": "_lt", "<": "_lt", "lte": "_lte", "<=": "_lte",
    "gt": "_gt", ">": "_gt", "gte": "_gte", ">=": "_gte",
    "in": "_in", "nin": "_nin",
    "null": "_null", "nnull": "_nnull",
    "contains": "_contains", "like": "_contains", "ncontains": "_ncontains", "nlike": "_ncontains",
    "between": "_between", "nbetween": "_nbetween",
    "empty": "_empty", "nempty": "_nempty",
}
SPECIAL_OPERATORS = ("rlike", "nrlike", "has", "nhas", "all")
V8_OPERATORS = (*OPERATORS, *SPECIAL_OPERATORS)
_FLAG_OPERATORS = {"_null", "_nnull", "_empty", "_nempty"}  # the value does not matter: v9 gets "true"
_LIST_OPERATORS = {"_in", "_nin", "_between", "_nbetween"}
_NOW_OPERATORS = {"_eq", "_neq", "_lt", "_lte", "_gt", "_gte", *_LIST_OPERATORS}
_CONTAINS_OPERATORS = {"_contains", "_ncontains"}

# Parameters that exist only in v9: their presence means the input is already a v9 query.
V9_ONLY_PARAMS = ("deep", "aggregate", "groupBy", "alias", "export", "version")

# v8 endpoint (the path segment after the project) -> v9 path prefix (None: handled by code below).
ENDPOINTS = ("items", "activity", "auth", "collections", "collection_presets", "custom", "fields", "files",
             "folders", "gql", "interfaces", "layouts", "modules", "mail", "permissions", "relations",
             "revisions", "roles", "scim", "settings", "users", "utils", "webhooks", "assets", "types")
_PLAIN = {"collections": "/collections", "fields": "/fields", "folders": "/folders", "relations": "/relations",
          "revisions": "/revisions", "collection_presets": "/presets", "webhooks": "/webhooks"}
# /:project/items/directus_* reached system tables in v8; v9 forbids /items/directus_*.
SYSTEM_ITEMS = {"directus_users": "/users", "directus_files": "/files", "directus_folders": "/folders",
                "directus_roles": "/roles", "directus_activity": "/activity", "directus_revisions": "/revisions",
                "directus_collection_presets": "/presets", "directus_permissions": "/permissions",
                "directus_settings": "/settings", "directus_collections": "/collections",
                "directus_fields": "/fields", "directus_relations": "/relations", "directus_webhooks": "/webhooks"}
_ENDPOINT_COLLECTION = {"users": "directus_users", "files": "directus_files", "folders": "directus_folders",
                        "roles": "directus_roles", "activity": "directus_activity", "revisions": "directus_revisions",
                        "collection_presets": "directus_collection_presets", "permissions": "directus_permissions",
                        "collections": "directus_collections", "fields": "directus_fields",
                        "relations": "directus_relations"}

# v8 system field -> v9 field (None: no v9 field). Applied to fields, sort and filter paths.
SYSTEM_FIELDS: dict[str, dict[str, str | None]] = {
    "directus_users": {"locale": "language", "2fa_secret": "tfa_secret", "last_access_on": "last_access",
                       "external_id": "external_identifier", "timezone": None, "company": None,
                       "locale_options": None, "password_reset_token": None},
    "directus_roles": {"ip_whitelist": "ip_access", "enforce_2fa": "enforce_tfa", "external_id": None,
                       "module_listing": None, "collection_listing": None},
    "directus_files": {"private_hash": None, "checksum": None, "data": None},
    "directus_folders": {"parent_folder": "parent"},
    "directus_activity": {"action_by": "user", "action_on": "timestamp", "edited_on": None,
                          "comment_deleted_on": None},
    "directus_revisions": {"parent_item": None, "parent_collection": None, "parent_changed": None},
    "directus_collection_presets": {"title": "bookmark", "view_type": "layout", "view_query": "layout_query",
                                    "view_options": "layout_options", "search_query": "search", "filters": "filter",
                                    "translation": None},
    "directus_collections": {"single": "singleton", "translation": "translations", "managed": None},
    "directus_fields": {"hidden_detail": "hidden", "hidden_browse": None, "locked": None,
                        "translation": "translations", "type": None},
    "directus_relations": {"collection_many": "many_collection", "field_many": "many_field",
                           "collection_one": "one_collection", "field_one": "one_field"},
}
# Relational system fields (v8 names), so that renames follow dot paths such as role.ip_whitelist.
SYSTEM_RELATIONS: dict[str, dict[str, str]] = {
    "directus_users": {"role": "directus_roles", "avatar": "directus_files"},
    "directus_files": {"uploaded_by": "directus_users", "folder": "directus_folders"},
    "directus_folders": {"parent_folder": "directus_folders"},
    "directus_activity": {"action_by": "directus_users"},
    "directus_revisions": {"activity": "directus_activity"},
    "directus_collection_presets": {"user": "directus_users", "role": "directus_roles"},
    "directus_permissions": {"role": "directus_roles"},
    "directus_roles": {"users": "directus_users"},
}

_PROJECT = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY_SAFE = "[]()_-.~*"
_VALUE_SAFE = ",*$:/@!()-._~"
QS_DEPTH = 10  # Directus: qs.parse(str, { depth: 10 })
QS_ARRAY_LIMIT = 20  # qs's default arrayLimit: a higher index turns the array into an object


# -- entry point -------------------------------------------------------------------------------------------------
def rewrite_query(v8: str) -> RewriteResult:
    """Rewrite a v8 URL (``https://host/_/items/x?...``), path (``/_/items/x?...``) or query string
    (``filter[a][eq]=1&limit=5``, optionally with a leading ``?``) into its v9 form."""
    text = (v8 or "").strip()
    if not text:
        raise NotAV8Query("the query is empty; pass a v8 URL such as /_/items/articles?filter[id][eq]=1")
    return _Rewriter(text).run()


class _Rewriter:
    def __init__(self, text: str) -> None:
        self.text = text
        self.notes: list[Note] = []
        self.collection: str | None = None  # the system collection the path reads (for field renames)
        self.list_endpoint = False  # item lists: where v8's list defaults (limit, status, sort) apply
        self.has_id = False
        self.extra_filters: list[dict[str, Any]] = []  # ANDed with the query's own filter
        self.extra_params: dict[str, str] = {}

    def note(self, text: str) -> None:
        if Note("note", text) not in self.notes:
            self.notes.append(Note("note", text))

    def warn(self, text: str) -> None:
        if Note("warning", text) not in self.notes:
            self.notes.append(Note("warning", text))

    # -- shape of the input ------------------------------------------------------------------------------------
    def run(self) -> RewriteResult:
        text = self.text
        scheme = netloc = fragment = ""
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
            parts = urlsplit(text)
            scheme, netloc, path, query, fragment = parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment
            if scheme not in ("http", "https"):
                raise NotAV8Query(f"'{scheme}://' is not an HTTP URL; pass the v8 API URL (http:// or https://)")
        elif text.startswith("?"):
            path, query = None, text[1:]
        elif text.startswith("/") or ("=" not in text.split("?", 1)[0] and "/" in text.split("?", 1)[0]):
            path, _, query = text.partition("?")
            path, _, fragment = path.partition("#")
            query, _, frag2 = query.partition("#")
            fragment = fragment or frag2
            if not path.startswith("/"):
                path = "/" + path
        else:
            path, query = None, text
        new_path = self.rewrite_path(path) if path is not None else None
        pairs = parse_qsl(query, keep_blank_values=True)
        if path is None and not pairs:
            raise NotAV8Query(f"{text!r} is neither a v8 API path nor a query string; pass e.g. /_/items/articles?limit=5")
        out = self.rewrite_params(pairs)
        query_out = "&".join(f"{quote(k, safe=_KEY_SAFE)}={quote(v, safe=_VALUE_SAFE)}" for k, v in out)
        if new_path is None:
            v9 = ("?" if text.startswith("?") else "") + query_out
        elif scheme:
            v9 = urlunsplit((scheme, netloc, new_path, query_out, fragment))
        else:
            v9 = new_path + (f"?{query_out}" if query_out else "") + (f"#{fragment}" if fragment else "")
        return RewriteResult(v9=v9, notes=tuple(self.notes))

    # -- paths ---------------------------------------------------------------------------------------------------
    def rewrite_path(self, path: str) -> str:
        segments = [s for s in path.split("/") if s]
        if not segments:
            raise NotAV8Query("the path is empty; v8 API paths look like /:project/items/:collection (e.g. /_/items/articles)")
        if segments[0] == "server" and len(segments) == 2 and segments[1] in ("ping", "info", "projects"):
            return self._server(segments[1], prefix=[])
        for index in range(len(segments) - 1):
            if _PROJECT.match(segments[index]) and segments[index + 1] in ENDPOINTS:
                prefix = segments[:index]
                endpoint, rest = segments[index + 1], segments[index + 2:]
                return _join(prefix, self._endpoint(endpoint, rest))
            if segments[index] == "server" and segments[index + 1] in ("ping", "info", "projects") and index + 2 == len(segments):
                return self._server(segments[index + 1], prefix=segments[:index])
        if segments[-1] == "_" or (len(segments) == 1 and _PROJECT.match(segments[0]) and segments[0] not in ENDPOINTS):
            self.note("v8's project root (/:project/) became /server/info; v9 has one project per instance")
            return _join(segments[:-1], ["server", "info"])
        if segments[0] in ENDPOINTS or segments[0] in ("presets", "graphql", "extensions"):
            raise NotAV8Query(f"'{path}' has no v8 project segment (v8 paths are /:project/{segments[0]}/…, e.g. "
                              f"/_/{segments[0]}/…); it looks like a v9 path already")
        raise NotAV8Query(f"'{path}' is not a v8 API path; v8 paths are /:project/<endpoint>/… with endpoint one of: "
                          + ", ".join(ENDPOINTS))

    def _server(self, what: str, prefix: list[str]) -> str:
        if what == "projects":
            raise NotAV8Query("/server/projects has no v9 form: a v9 instance serves one project (read /server/info)")
        return _join(prefix, ["server", what])

    def _endpoint(self, endpoint: str, rest: list[str]) -> list[str]:
        handler = getattr(self, f"_ep_{endpoint}", None)
        if handler is not None:
            return handler(rest)
        if endpoint in _PLAIN:
            self.collection = _ENDPOINT_COLLECTION.get(endpoint)
            self.list_endpoint = self.collection is not None and not rest
            if endpoint == "collection_presets":
                self.note("/:project/collection_presets became /presets (bookmarks and layout presets); "
                          "view_type/view_query/view_options became layout/layout_query/layout_options")
            if endpoint == "webhooks":
                self.note("webhooks are deprecated in Directus 10 and removed in 11: recreate them as Flows")
            if endpoint == "fields" and any("," in s for s in rest):
                self.warn("v8 read several fields by CSV in the path; v9 reads one per request (/fields/:collection/:field)")
            return [_PLAIN[endpoint].strip("/"), *rest]
        if endpoint == "mail":
            raise NotAV8Query("/:project/mail has no v9 form (v9 sends mail only from Flows or extensions); "
                              "use a Flow with a Send Email operation")
        if endpoint == "scim":
            raise NotAV8Query("/:project/scim has no v9 form (Directus 9+ has no SCIM API); use /users and /roles "
                              "or an SSO provider")
        if endpoint == "types":
            raise NotAV8Query("/:project/types has no v9 form (v9 field types are fixed; see /fields)")
        raise NotAV8Query(f"unknown v8 endpoint {endpoint!r}")  # pragma: no cover (ENDPOINTS is exhaustive)

    def _ep_items(self, rest: list[str]) -> list[str]:
        if not rest:
            raise NotAV8Query("a v8 items path names its collection: /:project/items/:collection")
        collection, tail = rest[0], rest[1:]
        if collection in SYSTEM_ITEMS:
            self.note(f"/items/{collection} is refused by v9: system data has its own endpoint ({SYSTEM_ITEMS[collection]})")
            self.collection = collection
            base = [SYSTEM_ITEMS[collection].strip("/")]
        elif collection.startswith("directus_"):
            raise NotAV8Query(f"{collection} has no v9 endpoint (v9 keeps no such system data)")
        else:
            base = ["items", collection]
        return self._item_tail(base, collection, tail)

    def _item_tail(self, base: list[str], collection: str, tail: list[str]) -> list[str]:
        if not tail:
            self.list_endpoint = True
            return base
        ident = tail[0]
        if len(tail) >= 2 and tail[1] == "revisions":
            self.note("item revisions are read from /revisions filtered by collection and item in v9")
            self.extra_filters += [_cond(["collection"], "_eq", collection), _cond(["item"], "_eq", ident)]
            if len(tail) >= 3:
                self.extra_params.update({"sort": "id", "offset": tail[2], "limit": "1"})
                self.note("v8's /revisions/:offset (the revision at that position) is offset=N&limit=1 sorted by id")
            if collection in ("directus_files", "directus_users", "directus_roles", "directus_folders"):
                self.note(f"v8's integer ids of {collection} are UUIDs in v9: use the new id from the migration's id map")
            return ["revisions"]
        if len(tail) > 1:
            raise NotAV8Query(f"'{'/'.join(tail)}' after an item id is not a v8 items path")
        if "," in ident:
            self.note("v8 read several items by CSV in the path; v9 filters on the primary key instead "
                      "(assumed to be named id: adjust if not)")
            self.extra_filters.append(_cond(["id"], "_in", ident))
            self.list_endpoint = False
            return base
        self.has_id = True
        if collection in ("directus_files", "directus_users", "directus_roles", "directus_folders") and ident != "me":
            self.note(f"v8's integer ids of {collection} are UUIDs in v9: replace {ident} by the new id from the "
                      "migration's id map")
        return [*base, ident]

    def _system(self, endpoint: str, rest: list[str]) -> list[str]:
        collection = _ENDPOINT_COLLECTION[endpoint]
        self.collection = collection
        return self._item_tail([endpoint], collection, rest)

    def _ep_users(self, rest: list[str]) -> list[str]:
        if rest[:1] == ["me"] or rest[:1] == ["invite"]:
            self.collection = "directus_users"
            self.has_id = rest[:1] == ["me"]
            return ["users", *rest]
        if len(rest) == 3 and rest[1:] == ["tracking", "page"]:
            self.note("v8's PATCH /users/:id/tracking/page is PATCH /users/me/track/page (the caller only)")
            return ["users", "me", "track", "page"]
        return self._system("users", rest)

    def _ep_files(self, rest: list[str]) -> list[str]:
        return self._system("files", rest)

    def _ep_roles(self, rest: list[str]) -> list[str]:
        if rest[:1] in (["1"], ["2"]) and len(rest) == 1:
            self.note("v8 role 1 (Administrator) and 2 (Public) are the admin role and the public role/policy in v9")
        return self._system("roles", rest)

    def _ep_activity(self, rest: list[str]) -> list[str]:
        self.collection = "directus_activity"
        if rest[:1] == ["comment"]:
            self.note("comments: /activity/comment in Directus 10; Directus 11 moved them to /comments")
            return ["activity", *rest]
        self.list_endpoint = not rest
        self.has_id = bool(rest)
        return ["activity", *rest]

    def _ep_permissions(self, rest: list[str]) -> list[str]:
        self.collection = "directus_permissions"
        self.note("v8 permissions (per role and status: create/read/update/delete levels, field blacklists) are "
                  "one row per action with filter rules and field lists in v9: filters on them need rewriting by hand")
        if rest[:1] == ["me"]:
            self.note("/permissions/me exists in Directus 11; on 10.x a non-admin reads its own with /permissions")
            return ["permissions", *rest]
        self.list_endpoint = not rest
        return ["permissions", *rest]

    def _ep_auth(self, rest: list[str]) -> list[str]:
        if rest == ["authenticate"]:
            self.note("POST /auth/login takes {email, password} and answers {data: {access_token, expires, "
                      "refresh_token}} (v8 answered {data: {token, user}})")
            return ["auth", "login"]
        if rest == ["refresh"]:
            self.note("POST /auth/refresh takes {refresh_token} (v8 took {token})")
            return ["auth", "refresh"]
        if rest in (["password", "request"], ["password", "reset"], ["logout"]):
            return ["auth", *rest]
        if rest == ["sso"]:
            self.note("v8's SSO provider list is GET /auth in v9")
            return ["auth"]
        if len(rest) in (2, 3) and rest[0] == "sso" and (len(rest) == 2 or rest[2] == "callback"):
            self.note("v8's SSO providers are configured as AUTH_<PROVIDER>_* in v9")
            return ["auth", "login", *rest[1:]]
        raise NotAV8Query(f"'/auth/{'/'.join(rest)}' is not a v8 auth path (authenticate, refresh, password/request, "
                          "password/reset, sso)")

    def _ep_utils(self, rest: list[str]) -> list[str]:
        mapping = {("hash",): ["utils", "hash", "generate"], ("hash", "match"): ["utils", "hash", "verify"],
                   ("random", "string"): ["utils", "random", "string"]}
        if tuple(rest) not in mapping:
            raise NotAV8Query(f"'/utils/{'/'.join(rest)}' is not a v8 utils path (hash, hash/match, random/string)")
        if rest[:1] == ["hash"]:
            self.note("v9 hashes with argon2 (v8 with bcrypt): hashes made by v8 do not verify in v9")
        return mapping[tuple(rest)]

    def _ep_gql(self, rest: list[str]) -> list[str]:
        self.warn("the GraphQL schema changed (v8: items { <collection> { data { … } } }; v9: <collection> { … }): "
                  "rewrite the GraphQL query itself")
        return ["graphql", *rest]

    def _ep_settings(self, rest: list[str]) -> list[str]:
        if rest == ["fields"]:
            return ["fields", "directus_settings"]
        self.note("v9 settings are one object (/settings), not key/value rows: read a setting as a field of it")
        if rest:
            self.warn(f"v8's /settings/{rest[0]} (one row) has no v9 path: read /settings?fields=<name of the setting>")
        return ["settings"]

    def _ep_assets(self, rest: list[str]) -> list[str]:
        if len(rest) != 1:
            raise NotAV8Query("a v8 assets path is /:project/assets/:private_hash")
        self.collection = "assets"
        self.note(f"v8 assets are addressed by private_hash ({rest[0]}); v9 by the file's UUID: replace it by the "
                  "new id from the migration's id map (directus_files row with this private_hash)")
        return ["assets", rest[0]]

    def _ep_custom(self, rest: list[str]) -> list[str]:
        self.warn("v8 custom endpoints are endpoint extensions in v9, mounted at /<extension id>/…: port the extension")
        return rest or [""]

    def _ep_interfaces(self, rest: list[str]) -> list[str]:
        self.note("v9 lists installed extensions (interfaces, layouts, modules, …) at /extensions")
        return ["extensions"]

    _ep_layouts = _ep_modules = _ep_interfaces

    # -- query parameters -------------------------------------------------------------------------------------
    def rewrite_params(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        params = _php_parse(pairs)
        for name in V9_ONLY_PARAMS:
            if name in params:
                raise NotAV8Query(f"'{name}' is a v9 query parameter, not a v8 one: this looks like a v9 query already")
        out: dict[str, Any] = {}
        passthrough: list[tuple[str, str]] = []
        status_given = "status" in params
        for name, value in params.items():
            if self.collection == "assets" and name in _ASSET_PARAMS:
                continue
            if name in ("filter", "fields", "sort", "limit", "offset", "page", "meta", "q", "search", "single",
                        "status", "lang", "groups", "depth"):
                continue  # handled below, in a fixed order
            passthrough += _flatten_php(name, value)
            if name == "access_token":
                continue
            self.note(f"parameter {name!r} is not a v8 query parameter this rewriter knows: kept unchanged")

        if "fields" in params:
            fields = self.rewrite_fields(_csv(params["fields"], "fields"))
            if fields:
                out["fields"] = fields
        filter_node = self.rewrite_filter(params.get("filter"), status=params.get("status"))
        search = params.get("q") if self.collection != "assets" else None  # on assets, q is the quality
        if search is not None:
            if "search" in params:
                self.note("v8 ignored search when q was given; q became search")
            out["search"] = _scalar(search, "q")
        elif "search" in params:
            out["search"] = _scalar(params["search"], "search")
        if "sort" in params:
            sort = self.rewrite_sort(_csv(params["sort"], "sort"))
            if sort:
                out["sort"] = sort
        for name in ("limit", "offset", "page"):
            if name in params:
                value = _scalar(params[name], name)
                if not re.fullmatch(r"-?\d+", value.strip()):
                    raise NotAV8Query(f"{name}={value!r} is not an integer")
                out[name] = value.strip()
        if "page" in out and "limit" not in out:
            self.note("v8 ignored page without limit (it returned the first page); v9 applies it with its default limit")
        if "page" in out and "offset" in out:
            self.note("v8 let offset win over page, v9 lets page win: page was dropped")
            del out["page"]
        single = params.get("single")
        if single is not None:
            self.rewrite_single(_scalar(single, "single"), out)
        if "meta" in params:
            meta = self.rewrite_meta(_csv(params["meta"], "meta"))
            if meta:
                out["meta"] = meta
        if "lang" in params:
            languages = _scalar(params["lang"], "lang")
            self.warn(f"v8's lang={languages} (only these translations) has no query-wide v9 form: add "
                      f"deep[<translations field>][_filter][<language field>][_in]={languages}")
        if "groups" in params:
            out["groupBy"] = ",".join(self.rename(f) or f for f in _csv(params["groups"], "groups"))
            self.note("v8's groups became groupBy, which v9 applies with aggregate[...] only")
        if "depth" in params:
            self.warn("v8's depth parameter has no v9 form: ask for related fields with fields=*.*")
        if self.collection == "assets":
            out.update(self.rewrite_asset_params(params))
        for name, value in self.extra_params.items():
            out.setdefault(name, value)
        if self.list_endpoint and self.collection is None:
            missing = [what for what, given in (("limit", "limit" in params or "single" in params),
                                                ("sort", "sort" in params), ("status", status_given)) if not given]
            if missing:
                self.note("v8 list defaults differ from v9's: " + "; ".join(_DEFAULTS[m] for m in missing))

        result: list[tuple[str, str]] = []
        if "fields" in out:
            result.append(("fields", out.pop("fields")))
        if filter_node is not None:
            result += self.render_filter(filter_node)
        for name in ("search", "sort", "limit", "offset", "page", "meta", "groupBy"):
            if name in out:
                result.append((name, out.pop(name)))
        result += list(out.items())
        return result + passthrough

    # fields / sort / meta / single ----------------------------------------------------------------------------
    def rename(self, path: str) -> str | None:
        """A dot path in the endpoint's collection with v8 system field names replaced; None if it has no v9 field."""
        collection = self.collection
        if collection not in SYSTEM_FIELDS and collection not in SYSTEM_RELATIONS:
            return path
        out = []
        for segment in path.split("."):
            renames = SYSTEM_FIELDS.get(collection or "", {})
            if segment in renames:
                new = renames[segment]
                if new is None:
                    return None
                if new != segment:
                    self.note(f"{collection}.{segment} is {new} in v9")
                out.append(new)
            else:
                out.append(segment)
            collection = SYSTEM_RELATIONS.get(collection or "", {}).get(segment)
        return ".".join(out)

    def rewrite_fields(self, fields: list[str]) -> str:
        kept = []
        for entry in fields:
            new = self.rename(entry)
            if new is None:
                if "data" in entry.split(".") and self.collection in ("directus_files", "directus_users"):
                    self.warn(f"{entry} (v8's file URLs and thumbnails) has no v9 field: build /assets/<id> URLs instead")
                else:
                    self.warn(f"field {entry} has no v9 equivalent: dropped from fields")
                continue
            kept.append(new)
        return ",".join(kept)

    def rewrite_sort(self, entries: list[str]) -> str:
        kept = []
        for entry in entries:
            if entry == "?":
                self.warn("v9 has no random sort (v8's sort=?): dropped; shuffle client-side")
                continue
            descending = entry.startswith("-")
            name = self.rename(entry[1:] if descending else entry)
            if name is None:
                self.warn(f"sort field {entry} has no v9 equivalent: dropped")
                continue
            kept.append(("-" if descending else "") + name)
        return ",".join(kept)

    def rewrite_meta(self, values: list[str]) -> str:
        if "*" in values:
            self.note("meta=* is total_count and filter_count in v9 (v8's result_count, status_count and "
                      "pagination links are gone: count data[] and compute pages from filter_count)")
            return "*"
        kept = []
        for value in values:
            if value in ("total_count", "filter_count"):
                kept.append(value)
            elif value == "result_count":
                self.note("meta result_count is gone in v9: it is the length of data[]")
            elif value in ("status", "status_count"):
                self.warn("meta status_count has no v9 meta: use aggregate[count]=*&groupBy=status")
            elif value == "page":
                self.warn("meta page (v8's pagination links) has no v9 form: compute pages from meta=filter_count and limit")
            elif value in ("collection", "type"):
                self.note(f"meta {value} is gone in v9 (the path says it)")
            elif value in ("", "0", "false"):
                continue
            else:
                raise NotAV8Query(f"meta={value!r} is not a v8 meta value (*, total_count, filter_count, result_count, "
                                  "status, page, collection, type)")
        return ",".join(kept)

    def rewrite_single(self, value: str, out: dict[str, Any]) -> None:
        if value.strip().lower() in ("", "0", "false", "null"):
            self.note("single=0 is v8's default: dropped")
            return
        if self.has_id:
            self.note("single is gone in v9; a path with an id returns one object anyway")
            return
        out.setdefault("limit", "1")
        self.warn("single is gone in v9 (it returned the first item as an object): limit=1 returns a list, read "
                  "data[0]; a singleton collection answers with an object by itself")

    def rewrite_asset_params(self, params: dict[str, Any]) -> dict[str, str]:
        out = {}
        for v8_name, v9_name in _ASSET_PARAMS.items():
            if v8_name in params:
                value = _scalar(params[v8_name], v8_name)
                if v8_name == "f":
                    value = {"crop": "cover"}.get(value, value)
                out[v9_name] = value
        if "key" in out:
            self.note("asset keys (v8's asset_whitelist) are storage asset presets in v9's settings: recreate them")
        return out

    # filters -------------------------------------------------------------------------------------------------
    def rewrite_filter(self, raw: Any, status: Any) -> Any | None:
        chain: list[tuple[str, dict[str, Any] | None]] = []
        if raw is not None:
            if not isinstance(raw, dict):
                text = str(raw)
                if text.lstrip().startswith("{"):
                    raise NotAV8Query("filter={…} (a JSON filter) is v9 syntax; v8 filters are filter[field][operator]=value")
                raise NotAV8Query(f"filter={text!r} is not a v8 filter; write filter[field][operator]=value")
            for column, conditions in raw.items():
                column = str(column)
                if column.startswith("_"):
                    raise NotAV8Query(f"filter[{column}] is v9 syntax (logical operators _and/_or); v8 used "
                                      "filter[field][logical]=or")
                if "." in column or not (isinstance(conditions, dict) and 0 in conditions):
                    conditions = [conditions]
                else:
                    conditions = [conditions[k] for k in conditions]
                for condition in conditions:
                    chain.append(self.rewrite_condition(column, condition))
        if chain and chain[0][0] == "or":
            self.note("logical=or on the first filter condition has no effect (v8 ignored it too)")
        groups: list[list[dict[str, Any]]] = [[]]
        for index, (logical, node) in enumerate(chain):
            if index and logical == "or":
                groups.append([])
            if node is not None:
                groups[-1].append(node)
        groups = [g for g in groups if g]
        if len(groups) > 1:
            self.note("v8's logical=or chain (AND binds tighter than OR, left to right) became an _or of _and groups")
        node = _or_of_ands(groups)
        extras = list(self.extra_filters)
        if status is not None:
            statuses = _csv(status, "status")
            if "*" in statuses:
                self.note("status=* is not needed in v9: its API returns items of every status (v8 hid soft-deleted ones)")
            elif statuses:
                self.warn("status is gone in v9: it became filter[status][_in] (assumes the status field is named "
                          "status: adjust if not)")
                extras.append(_cond(["status"], "_in", ",".join(statuses)))
        parts = ([node] if node is not None else []) + extras
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"_and": parts}

    def rewrite_condition(self, column: str, condition: Any) -> tuple[str, dict[str, Any] | None]:
        path = column.split(".")
        if any(not p for p in path):
            raise NotAV8Query(f"filter[{column}] is not a field path")
        if isinstance(condition, dict):
            condition = dict(condition)
            logical = condition.pop("logical", None)
            if logical is not None:
                logical = _scalar(logical, "logical").strip().lower()
                if logical not in ("and", "or"):
                    raise NotAV8Query(f"filter[{column}][logical]={logical!r}: v8's logical is and or or")
            if not condition:
                raise NotAV8Query(f"filter[{column}] has no operator; write filter[{column}][eq]=value")
            operator, value = next(iter(condition.items()))
            operator = str(operator)
            if len(condition) > 1:
                ignored = ", ".join(str(k) for k in list(condition)[1:])
                self.warn(f"filter[{column}] has several operators; v8 applied only the first ({operator}) and "
                          f"ignored {ignored}: so does this rewrite")
        else:
            logical, operator, value = None, "=", condition
        if operator.startswith("_"):
            raise NotAV8Query(f"filter operator {operator!r} is v9 syntax; v8 operators are: {', '.join(V8_OPERATORS)}")
        if operator not in V8_OPERATORS:
            raise NotAV8Query(f"unknown v8 filter operator {operator!r} in filter[{column}]; v8 operators are: "
                              + ", ".join(V8_OPERATORS))
        renamed = self.rename(column)
        if renamed is None:
            self.warn(f"filter on {column}: the field has no v9 equivalent; the condition was dropped")
            return logical or "and", None
        path = renamed.split(".")
        return logical or "and", self.rewrite_operator(path, column, operator, value)

    def rewrite_operator(self, path: list[str], column: str, operator: str, value: Any) -> dict[str, Any] | None:
        if operator in ("has", "nhas"):
            count = _scalar(value, operator).strip() or "1"
            if not re.fullmatch(r"\d+", count):
                raise NotAV8Query(f"filter[{column}][{operator}]={count!r}: has takes a number of related items")
            n = int(count)
            self.note(f"v8's {operator} (count of related items) is the count() filter function in v9 (Directus 10 and 11); "
                      f"{column} must be a one-to-many or many-to-many field")
            if operator == "has":
                op, number = ("_gte", n) if n >= 1 else ("_eq", 0)
            else:
                op, number = ("_lt", n) if n >= 1 else ("_gt", 0)
            return _cond([*path[:-1], f"count({path[-1]})"], op, str(number))
        if operator == "all":
            ids = ",".join(v.strip() for v in _list(value))
            self.warn(f"filter[{column}][all]={ids} (related to every one of these ids) has no v9 operator: dropped; "
                      f"write it as filter[_and][i][{'][' .join(path)}][_some][<related key>][_eq]=<id> per id")
            return None
        if operator in ("rlike", "nrlike"):
            return self.rewrite_rlike(path, column, operator, _scalar(value, operator))
        op = OPERATORS[operator]
        if op in _FLAG_OPERATORS:
            return _cond(path, op, "true")
        if op in _LIST_OPERATORS:
            values = _list(value)
            values = [self.now(v, column) for v in values]
            if op in ("_between", "_nbetween") and len(values) != 2:
                raise NotAV8Query(f"filter[{column}][{operator}] needs two values (a,b); got {len(values)}")
            return _cond(path, op, values if any("," in v for v in values) else ",".join(values))
        text = self.now(_scalar(value, operator), column)
        if op in _CONTAINS_OPERATORS:
            self.note("v8 matched like/contains without regard to case (MySQL collations); v9's _contains is "
                      "case-sensitive on PostgreSQL: use _icontains/_nicontains there to keep v8's behaviour")
            if "%" in text or "_" in text:
                self.note(f"v8 escaped % and _ in {operator} values; v9 passes them to LIKE as wildcards "
                          f"(filter[{column}]={text})")
        if text.lower() == "null" and op in ("_eq", "_neq"):
            self.warn(f"v8 compared {column} with the string 'null'; v9 reads the value null as NULL")
        return _cond(path, op, text)

    def rewrite_rlike(self, path: list[str], column: str, operator: str, pattern: str) -> dict[str, Any] | None:
        negate = operator == "nrlike"
        leading = pattern.startswith("%")
        trailing = pattern.endswith("%") and not pattern.endswith("\\%") and len(pattern) > (1 if leading else 0)
        core = pattern[1 if leading else 0: len(pattern) - 1 if trailing else len(pattern)]
        if leading and trailing:
            op = "_ncontains" if negate else "_contains"
        elif leading:
            op = "_nends_with" if negate else "_ends_with"
        elif trailing:
            op = "_nstarts_with" if negate else "_starts_with"
        elif not _has_wildcard(core):
            self.note(f"{operator} {pattern!r} has no wildcard: it is an (in)equality, case-insensitive on MySQL")
            return _cond(path, "_neq" if negate else "_eq", core.replace("\\%", "%").replace("\\_", "_"))
        else:
            self.warn(f"filter[{column}][{operator}]={pattern} (a LIKE pattern without a leading or trailing %) "
                      "has no v9 form: dropped; v9 matches only contains/starts with/ends with")
            return None
        if _has_wildcard(core):
            self.note(f"the wildcards inside {pattern!r} still act in v9 (Directus 10 passes them to LIKE unescaped)")
        return _cond(path, op, core)

    def now(self, value: str, column: str) -> str:
        if value.strip().lower() == "now":
            self.note(f"v8's now became $NOW (assumes {column} is a date or datetime field, as v8 required)")
            return "$NOW"
        return value

    def render_filter(self, node: Any) -> list[tuple[str, str]]:
        flat = _flatten_filter(_merge_if_distinct(node), ["filter"])
        too_deep = any(len(keys) - 1 > QS_DEPTH for keys, _ in flat)
        too_wide = any(isinstance(k, int) and k > QS_ARRAY_LIMIT for keys, _ in flat for k in keys)
        if too_deep or too_wide:
            self.note("the filter is deeper or has more items than Directus's query-string parser takes (qs: depth "
                      f"{QS_DEPTH}, {QS_ARRAY_LIMIT} list items): emitted as a JSON filter")
            return [("filter", json.dumps(node, separators=(",", ":"), ensure_ascii=False))]
        return [(keys[0] + "".join(f"[{k}]" for k in keys[1:]), value) for keys, value in flat]


_ASSET_PARAMS = {"w": "width", "h": "height", "f": "fit", "q": "quality", "key": "key", "download": "download"}
_DEFAULTS = {
    "limit": "v8 returned 200 items by default (its default_limit setting), v9 returns 100: pass limit",
    "sort": "v8 sorted by the collection's sort field, else the primary key: pass sort to keep that order",
    "status": "v8 hid items whose status is soft-deleting (e.g. deleted) unless status=* was given, v9 returns "
              "them: add filter[status][_neq]=<that status> to keep them out",
}


# -- helpers -----------------------------------------------------------------------------------------------------
def _join(prefix: list[str], segments: list[str]) -> str:
    return "/" + "/".join(quote(s, safe="@:,!$*()-._~") for s in [*prefix, *segments] if s != "")


def _cond(path: list[str], op: str, value: Any) -> dict[str, Any]:
    node: Any = {op: value}
    for segment in reversed(path):
        node = {segment: node}
    return node


def _or_of_ands(groups: list[list[dict[str, Any]]]) -> dict[str, Any] | None:
    if not groups:
        return None
    nodes = [g[0] if len(g) == 1 else {"_and": g} for g in groups]
    return nodes[0] if len(nodes) == 1 else {"_or": nodes}


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict) and len(node) == 1:
        (key, value), = node.items()
        if key.startswith("_") and key not in ("_and", "_or"):
            return [(*path, key)]
        return _leaves(value, (*path, key))
    return [path]  # not a single-path condition


def _merge_if_distinct(node: Any) -> Any:
    """{_and: [a, b]} becomes one object {a…, b…} when every part is one field path ending in a distinct
    operator: the same filter in v9 (it ANDs an object's keys), far easier to read as brackets."""
    if isinstance(node, dict) and list(node) in (["_and"], ["_or"]):
        node = {list(node)[0]: [_merge_if_distinct(part) for part in node[list(node)[0]]]}
    if not (isinstance(node, dict) and list(node) == ["_and"]):
        return node
    leaves = []
    for part in node["_and"]:
        found = _leaves(part)
        if len(found) != 1 or not found[0] or not found[0][-1].startswith("_") or found[0][0] in ("_and", "_or"):
            return node
        leaves.append(found[0])
    if len(set(leaves)) != len(leaves):
        return node
    merged: dict[str, Any] = {}
    for part in node["_and"]:
        target, source = merged, part
        while True:
            (key, value), = source.items()
            if key.startswith("_"):
                target[key] = value
                break
            target = target.setdefault(key, {})
            source = value
    return merged


def _flatten_filter(node: Any, keys: list[Any]) -> list[tuple[list[Any], str]]:
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in _flatten_filter(value, [*keys, key])]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in _flatten_filter(value, [*keys, index])]
    return [([str(k) if not isinstance(k, int) else k for k in keys], str(node))]


def _has_wildcard(text: str) -> bool:
    return bool(re.search(r"(?<!\\)[%_]", text))


def _php_parse(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``parse_str`` as PHP (and so v8) did it: ``a[b][]=x`` nests, ``[]`` appends, numeric keys are ints,
    a key given twice keeps its last value."""
    result: dict[Any, Any] = {}
    for raw_key, value in pairs:
        match = re.match(r"^([^\[]+)((?:\[[^\]]*\])*)$", raw_key)
        if not match:
            if "[" in raw_key:
                raise NotAV8Query(f"the key {raw_key!r} is cut short (an unencoded = in it?): encode symbolic "
                                  "operators, e.g. filter[id][%3D]=1 or filter[n][%3C%3D]=5")
            result[raw_key] = value
            continue
        base, brackets = match.group(1), match.group(2)
        keys: list[Any] = [base] + [_php_key(k) for k in re.findall(r"\[([^\]]*)\]", brackets)]
        target: dict[Any, Any] = result
        for index, key in enumerate(keys):
            last = index == len(keys) - 1
            if key == "":
                ints = [k for k in target if isinstance(k, int)]
                key = max(ints) + 1 if ints else 0
            if last:
                target[key] = value
            else:
                if not isinstance(target.get(key), dict):
                    target[key] = {}
                target = target[key]
    return result


def _php_key(key: str) -> Any:
    return int(key) if re.fullmatch(r"-?[1-9]\d*|0", key) else key


def _flatten_php(name: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for key, sub in value.items() for item in _flatten_php(f"{name}[{key}]", sub)]
    return [(name, value)]


def _scalar(value: Any, name: str) -> str:
    if isinstance(value, dict):
        raise NotAV8Query(f"{name} takes one value here, not a list")
    return str(value)


def _list(value: Any) -> list[str]:
    """v8's CSV-or-array values (in, nin, between, all): a string is split on commas, an array kept."""
    if isinstance(value, dict):
        return [str(v) for v in value.values() if not isinstance(v, dict)]
    return str(value).split(",")


def _csv(value: Any, name: str) -> list[str]:
    items = [str(v) for v in value.values()] if isinstance(value, dict) else [str(value)]
    return [part.strip() for item in items for part in item.split(",") if part.strip()]
