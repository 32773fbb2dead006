"""The v8 → v9 query rewriter: a table of v8 URLs and the v9 URLs they become (every v8 operator and
parameter), the notes that explain each change, Directus's own query parser (the suite's version) reading the
rewritten filters as meant, and the real ``directus-ops v8 rewrite-query`` command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness import CLI

from directus_ops.errors import NotAV8Query
from directus_ops.v8.query import rewrite_query

I = "/_/items/articles?"  # most cases read the sample's articles

# (v8 input, v9 output, fragments that must appear in the notes (warnings are marked "!"))
TABLE: list[tuple[str, str, list[str]]] = [
    # -- operators: every entry of v8's list, symbolic aliases encoded as a client sends them
    (I + "filter[id][eq]=1", "/items/articles?filter[id][_eq]=1", []),
    (I + "filter[id][%3D]=1", "/items/articles?filter[id][_eq]=1", []),
    (I + "filter[id]=1", "/items/articles?filter[id][_eq]=1", []),
    (I + "filter[id][neq]=1&filter[a][%21%3D]=2&filter[b][%3C%3E]=3",
     "/items/articles?filter[id][_neq]=1&filter[a][_neq]=2&filter[b][_neq]=3", []),
    (I + "filter[n][lt]=1&filter[o][%3C]=2&filter[p][lte]=3&filter[q][%3C%3D]=4",
     "/items/articles?filter[n][_lt]=1&filter[o][_lt]=2&filter[p][_lte]=3&filter[q][_lte]=4", []),
    (I + "filter[n][gt]=1&filter[o][%3E]=2&filter[p][gte]=3&filter[q][%3E%3D]=4",
     "/items/articles?filter[n][_gt]=1&filter[o][_gt]=2&filter[p][_gte]=3&filter[q][_gte]=4", []),
    (I + "filter[id][in]=1,2,3&filter[category][nin]=news,tech",
     "/items/articles?filter[id][_in]=1,2,3&filter[category][_nin]=news,tech", []),
    (I + "filter[id][in][]=1&filter[id][in][]=2", "/items/articles?filter[id][_in]=1,2", []),
    (I + "filter[keywords][in][]=a,b&filter[keywords][in][]=c",
     "/items/articles?filter[keywords][_in][0]=a,b&filter[keywords][_in][1]=c", []),
    (I + "filter[cover][null]&filter[author][nnull]=1",
     "/items/articles?filter[cover][_null]=true&filter[author][_nnull]=true", []),
    (I + "filter[title][contains]=alp&filter[slug][ncontains]=old",
     "/items/articles?filter[title][_contains]=alp&filter[slug][_ncontains]=old", ["_icontains"]),
    (I + "filter[title][like]=alp&filter[slug][nlike]=old",
     "/items/articles?filter[title][_contains]=alp&filter[slug][_ncontains]=old", ["case-sensitive on PostgreSQL"]),
    (I + "filter[title][like]=50%25", "/items/articles?filter[title][_contains]=50%25",
     ["v8 escaped % and _"]),
    (I + "filter[title][rlike]=%25alps%25&filter[slug][rlike]=sun%25&filter[summary][rlike]=%25hike",
     "/items/articles?filter[title][_contains]=alps&filter[slug][_starts_with]=sun&filter[summary][_ends_with]=hike", []),
    (I + "filter[title][nrlike]=%25alps%25&filter[slug][nrlike]=sun%25&filter[summary][nrlike]=%25hike",
     "/items/articles?filter[title][_ncontains]=alps&filter[slug][_nstarts_with]=sun&filter[summary][_nends_with]=hike", []),
    (I + "filter[title][rlike]=%25a_b%25", "/items/articles?filter[title][_contains]=a_b", ["wildcards inside"]),
    (I + "filter[title][rlike]=Sunrise&filter[slug][nrlike]=draft",
     "/items/articles?filter[title][_eq]=Sunrise&filter[slug][_neq]=draft", ["has no wildcard"]),
    (I + "filter[title][rlike]=a%25b&limit=5", "/items/articles?limit=5",
     ["!filter[title][rlike]=a%b (a LIKE pattern without a leading or trailing %) has no v9 form"]),
    (I + "filter[rating][between]=3,5&filter[reading_time][nbetween]=1,4",
     "/items/articles?filter[rating][_between]=3,5&filter[reading_time][_nbetween]=1,4", []),
    (I + "filter[summary][empty]=1&filter[body][nempty]=1",
     "/items/articles?filter[summary][_empty]=true&filter[body][_nempty]=true", []),
    (I + "filter[tags][all]=1,2&limit=5", "/items/articles?limit=5", ["!filter[tags][all]=1,2", "_some"]),
    (I + "filter[tags][has]=2&filter[gallery][nhas]=1",
     "/items/articles?filter[count(tags)][_gte]=2&filter[count(gallery)][_lt]=1", ["count() filter function"]),
    ("/_/items/authors?filter[articles][has]=0", "/items/authors?filter[count(articles)][_eq]=0", []),
    (I + "filter[published_on][lte]=now", "/items/articles?filter[published_on][_lte]=$NOW", ["$NOW"]),
    (I + "filter[published_on][between]=2020-01-01,now",
     "/items/articles?filter[published_on][_between]=2020-01-01,$NOW", []),
    (I + "filter[title][eq]=null", "/items/articles?filter[title][_eq]=null", ["!the string 'null'"]),
    # -- dot paths, logical=or, several conditions on one field
    (I + "filter[author.name][like]=Alex", "/items/articles?filter[author][name][_contains]=Alex", []),
    (I + "filter[author.account.email][eq]=a%40b.c", "/items/articles?filter[author][account][email][_eq]=a@b.c", []),
    (I + "filter[category][eq]=travel&filter[featured][logical]=or&filter[featured][eq]=1",
     "/items/articles?filter[_or][0][category][_eq]=travel&filter[_or][1][featured][_eq]=1", ["_or of _and groups"]),
    (I + "filter[title][like]=a&filter[body][logical]=or&filter[body][like]=b&filter[status][eq]=published",
     "/items/articles?filter[_or][0][title][_contains]=a&filter[_or][1][body][_contains]=b"
     "&filter[_or][1][status][_eq]=published", []),
    (I + "filter[title][logical]=or&filter[title][like]=a&filter[status][eq]=published",
     "/items/articles?filter[title][_contains]=a&filter[status][_eq]=published", ["first filter condition has no effect"]),
    (I + "filter[rating][0][gt]=2&filter[rating][1][lt]=5", "/items/articles?filter[rating][_gt]=2&filter[rating][_lt]=5", []),
    (I + "filter[rating][0][gt]=2&filter[rating][1][gt]=4",
     "/items/articles?filter[_and][0][rating][_gt]=2&filter[_and][1][rating][_gt]=4", []),
    (I + "filter[tags][has]=1&filter[tags][all]=1,2", "/items/articles?filter[count(tags)][_gte]=1",
     ["!v8 applied only the first (has)"]),
    # -- parameters
    (I + "q=alps", "/items/articles?search=alps", ["v9 returns 100"]),
    (I + "fields=*.*&limit=5", "/items/articles?fields=*.*&limit=5", []),
    (I + "fields[]=title&fields[]=author.name", "/items/articles?fields=title,author.name", []),
    (I + "sort=-published_on,title&limit=10&offset=20", "/items/articles?sort=-published_on,title&limit=10&offset=20", []),
    (I + "sort=?,title&limit=1", "/items/articles?sort=title&limit=1", ["!no random sort"]),
    (I + "limit=-1&page=3", "/items/articles?limit=-1&page=3", []),
    (I + "page=3", "/items/articles?page=3", ["v8 ignored page without limit"]),
    (I + "limit=10&offset=5&page=3", "/items/articles?limit=10&offset=5", ["page was dropped"]),
    (I + "meta=*", "/items/articles?meta=*", ["total_count and filter_count"]),
    (I + "meta=total_count,result_count,filter_count", "/items/articles?meta=total_count,filter_count",
     ["length of data[]"]),
    (I + "meta=status,page", "/items/articles", ["!aggregate[count]=*&groupBy=status", "!pagination links"]),
    (I + "single=1&filter[slug][eq]=my-first-draft", "/items/articles?filter[slug][_eq]=my-first-draft&limit=1",
     ["!single is gone", "data[0]"]),
    ("/_/items/articles/1?single=1", "/items/articles/1", ["returns one object anyway"]),
    (I + "single=0&limit=2", "/items/articles?limit=2", ["single=0"]),
    (I + "status=published,draft", "/items/articles?filter[status][_in]=published,draft", ["!status is gone"]),
    (I + "status=published&filter[title][like]=a&filter[body][logical]=or&filter[body][like]=b",
     "/items/articles?filter[_and][0][_or][0][title][_contains]=a&filter[_and][0][_or][1][body][_contains]=b"
     "&filter[_and][1][status][_in]=published", []),
    (I + "status=*", "/items/articles", ["v9: its API returns items of every status"]),
    (I + "lang=en,de&fields=*,translations.*", "/items/articles?fields=*,translations.*",
     ["!deep[<translations field>][_filter][<language field>][_in]=en,de"]),
    (I + "groups=category&depth=2", "/items/articles?groupBy=category", ["aggregate", "!depth"]),
    (I + "filter[title][eq]=a%26b%3Dc%2Bd%20e&access_token=tok", "/items/articles?filter[title][_eq]=a%26b%3Dc%2Bd%20e&access_token=tok", []),
    # -- paths
    ("/_/items/articles", "/items/articles", ["v8 list defaults differ", "soft-deleting"]),
    ("/_/items/articles/1", "/items/articles/1", []),
    ("/_/items/articles/1,2,3", "/items/articles?filter[id][_in]=1,2,3", ["assumed to be named id"]),
    ("/_/items/articles/3/revisions", "/revisions?filter[collection][_eq]=articles&filter[item][_eq]=3", []),
    ("/_/items/articles/3/revisions/2",
     "/revisions?filter[collection][_eq]=articles&filter[item][_eq]=3&sort=id&limit=1&offset=2", ["offset=N&limit=1"]),
    ("/_/items/directus_users?filter[locale][eq]=en-US", "/users?filter[language][_eq]=en-US", ["refused by v9"]),
    ("/_/collection_presets", "/presets", ["layout_query"]),
    ("/_/collection_presets/5", "/presets/5", []),
    ("/_/gql", "/graphql", ["!GraphQL schema changed"]),
    ("/_/files", "/files", []),
    ("/_/files/3", "/files/3", ["UUIDs in v9"]),
    ("/_/files?fields=id,data.full_url,private_hash,filename_download&filter[uploaded_by][eq]=1",
     "/files?fields=id,filename_download&filter[uploaded_by][_eq]=1", ["!/assets/<id>", "!private_hash"]),
    ("/_/users/me", "/users/me", []),
    ("/_/users?fields=first_name,locale,2fa_secret,role.enforce_2fa&filter[last_access_on][nnull]=1&sort=-last_access_on",
     "/users?fields=first_name,language,tfa_secret,role.enforce_tfa&filter[last_access][_nnull]=true&sort=-last_access",
     ["directus_users.locale is language", "directus_roles.enforce_2fa is enforce_tfa"]),
    ("/_/users?fields=*,timezone", "/users?fields=*", ["!timezone"]),
    ("/_/users/3/tracking/page", "/users/me/track/page", []),
    ("/_/users/invite", "/users/invite", []),
    ("/_/roles/2", "/roles/2", ["public role"]),
    ("/_/roles?fields=name,ip_whitelist", "/roles?fields=name,ip_access", []),
    ("/_/folders?filter[parent_folder][null]=1", "/folders?filter[parent][_null]=true", []),
    ("/_/activity?filter[action_by][eq]=1&sort=-action_on", "/activity?filter[user][_eq]=1&sort=-timestamp", []),
    ("/_/activity/comment", "/activity/comment", ["/comments"]),
    ("/_/auth/authenticate", "/auth/login", ["access_token"]),
    ("/_/auth/refresh", "/auth/refresh", ["refresh_token"]),
    ("/_/auth/password/request", "/auth/password/request", []),
    ("/_/auth/password/reset", "/auth/password/reset", []),
    ("/_/auth/sso", "/auth", []),
    ("/_/auth/sso/github", "/auth/login/github", []),
    ("/_/auth/sso/github/callback", "/auth/login/github/callback", []),
    ("/_/utils/hash", "/utils/hash/generate", ["argon2"]),
    ("/_/utils/hash/match", "/utils/hash/verify", []),
    ("/_/utils/random/string?length=32", "/utils/random/string?length=32", ["'length'", "kept unchanged"]),
    ("/_/settings", "/settings", ["one object"]),
    ("/_/settings/3", "/settings", ["!/settings?fields="]),
    ("/_/settings/fields", "/fields/directus_settings", []),
    ("/_/permissions?filter[role][eq]=3", "/permissions?filter[role][_eq]=3", ["one row per action"]),
    ("/_/permissions/me", "/permissions/me", ["Directus 11"]),
    ("/_/relations?fields=collection_many,field_many", "/relations?fields=many_collection,many_field", []),
    ("/_/fields/articles", "/fields/articles", []),
    ("/_/fields/articles/title,slug", "/fields/articles/title,slug", ["!one per request"]),
    ("/_/collections/articles?fields=collection,single", "/collections/articles?fields=collection,singleton", []),
    ("/_/webhooks", "/webhooks", ["Flows"]),
    ("/_/assets/nmiswkme4lc4sc84?key=thumbnail", "/assets/nmiswkme4lc4sc84?key=thumbnail", ["private_hash", "presets"]),
    ("/_/assets/nmiswkme4lc4sc84?w=200&h=100&f=crop&q=80",
     "/assets/nmiswkme4lc4sc84?width=200&height=100&fit=cover&quality=80", []),
    ("/_/interfaces", "/extensions", []),
    ("/_/layouts", "/extensions", []),
    ("/_/custom/hello/world", "/hello/world", ["!endpoint extensions"]),
    ("/server/ping", "/server/ping", []),
    ("/server/info", "/server/info", []),
    ("/_/", "/server/info", ["one project per instance"]),
    ("/myproject/items/tags", "/items/tags", []),
    ("/api/_/items/articles?limit=1", "/api/items/articles?limit=1", []),
    # -- shapes of input: full URL (encoded), bare query string, ?query
    ("https://cms.example.com/_/items/articles?filter%5Btitle%5D%5Blike%5D=caf%C3%A9+au%20lait&limit=1#top",
     "https://cms.example.com/items/articles?filter[title][_contains]=caf%C3%A9%20au%20lait&limit=1#top", []),
    ("filter[title][like]=alps&limit=1", "filter[title][_contains]=alps&limit=1", []),
    ("?filter[title][like]=alps", "?filter[title][_contains]=alps", []),
]

# What Directus (the suite's version) itself reads from some of the rewritten queries (qs.parse + parseFilter).
DIRECTUS_READS = {
    I + "filter[author.name][like]=Alex": {"author": {"name": {"_contains": "Alex"}}},
    I + "filter[id][in]=1,2,3&filter[category][nin]=news,tech":
        {"_and": [{"id": {"_in": ["1", "2", "3"]}}, {"category": {"_nin": ["news", "tech"]}}]},
    I + "filter[keywords][in][]=a,b&filter[keywords][in][]=c": {"keywords": {"_in": ["a,b", "c"]}},
    I + "filter[cover][null]&filter[author][nnull]=1":
        {"_and": [{"cover": {"_null": True}}, {"author": {"_nnull": True}}]},
    I + "filter[category][eq]=travel&filter[featured][logical]=or&filter[featured][eq]=1":
        {"_or": [{"category": {"_eq": "travel"}}, {"featured": {"_eq": "1"}}]},
    I + "filter[title][like]=a&filter[body][logical]=or&filter[body][like]=b&filter[status][eq]=published":
        {"_or": [{"title": {"_contains": "a"}},
                 {"_and": [{"body": {"_contains": "b"}}, {"status": {"_eq": "published"}}]}]},
    I + "filter[rating][0][gt]=2&filter[rating][1][gt]=4": {"_and": [{"rating": {"_gt": "2"}}, {"rating": {"_gt": "4"}}]},
    I + "filter[rating][0][gt]=2&filter[rating][1][lt]=5": {"_and": [{"rating": {"_gt": "2"}}, {"rating": {"_lt": "5"}}]},
    I + "filter[tags][has]=2&filter[gallery][nhas]=1":
        {"_and": [{"count(tags)": {"_gte": "2"}}, {"count(gallery)": {"_lt": "1"}}]},
    I + "filter[title][eq]=a%26b%3Dc%2Bd%20e&access_token=tok": {"title": {"_eq": "a&b=c+d e"}},
    I + "status=published&filter[title][like]=a&filter[body][logical]=or&filter[body][like]=b":
        {"_and": [{"_or": [{"title": {"_contains": "a"}}, {"body": {"_contains": "b"}}]},
                  {"status": {"_in": ["published"]}}]},
    "/_/items/articles/3/revisions": {"_and": [{"collection": {"_eq": "articles"}}, {"item": {"_eq": "3"}}]},
}


def _notes(result) -> list[str]:
    return [("!" if n.kind == "warning" else "") + n.text for n in result.notes]


@pytest.mark.parametrize("v8,v9,fragments", TABLE, ids=[row[0][:70] for row in TABLE])
def test_rewrite_table(v8: str, v9: str, fragments: list[str]) -> None:
    result = rewrite_query(v8)
    assert result.v9 == v9
    notes = _notes(result)
    for fragment in fragments:
        if fragment.startswith("!"):
            assert any(n.startswith("!") and fragment[1:] in n for n in notes), (fragment, notes)
        else:
            assert any(fragment in n for n in notes), (fragment, notes)
    assert result.complete == (not any(n.startswith("!") for n in notes))


def test_every_v8_operator_is_in_the_table() -> None:
    from directus_ops.v8.query import V8_OPERATORS
    from urllib.parse import unquote

    used = " ".join(unquote(v8) for v8, _, _ in TABLE)
    for operator in V8_OPERATORS:
        assert f"][{operator}]" in used, operator
    for parameter in ("filter", "fields", "sort", "limit", "offset", "page", "meta", "q", "single", "status", "lang",
                      "groups", "depth"):
        assert f"{parameter}=" in used or f"{parameter}[" in used, parameter


def test_directus_reads_the_rewritten_filters(directus: Path, tmp_path: Path) -> None:
    """Directus's own parsers (the suite's version: qs with its depth, then parseFilter) read every rewritten query without
    error, and read the filters below as the v8 query meant them."""
    outputs = [rewrite_query(v8).v9 for v8, _, _ in TABLE]
    script = tmp_path / "parse.mjs"
    script.write_text(
        "import { createRequire } from 'node:module';\n"
        f"const root = {json.dumps(str(directus / 'node_modules'))};\n"
        "const require = createRequire(root + '/@directus/api/package.json');\n"
        "const qs = require('qs');\n"
        "const { parseFilter } = await import(root + '/@directus/utils/dist/shared/index.js');\n"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "console.log(JSON.stringify(input.map((url) => {\n"
        "  const query = qs.parse(url.includes('?') ? url.split('?')[1].split('#')[0] : url, { depth: 10 });\n"
        "  try { return { ...query, filter: query.filter ? parseFilter(query.filter, null) : null }; }\n"
        "  catch (error) { return { error: String(error) }; }\n"
        "})));\n")
    done = subprocess.run(["node", str(script)], input=json.dumps(outputs), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    parsed = dict(zip((v8 for v8, _, _ in TABLE), json.loads(done.stdout)))
    for v8, read in parsed.items():
        assert "error" not in read, (v8, read)
        if "filter[" in v8 and "[all]" not in v8 and "rlike]=a%25b" not in v8:
            assert read["filter"], v8
    for v8, expected in DIRECTUS_READS.items():
        assert parsed[v8]["filter"] == expected, v8
    assert parsed[I + "q=alps"]["search"] == "alps"
    assert parsed[I + "meta=total_count,result_count,filter_count"]["meta"] == "total_count,filter_count"


def test_wide_or_chains_become_a_json_filter() -> None:
    """qs turns a list with an index above 20 into an object, which Directus refuses: such a filter is JSON."""
    v8 = I + "&".join(f"filter[f{i}][logical]=or&filter[f{i}][eq]={i}" for i in range(25))
    result = rewrite_query(v8)
    prefix = "/items/articles?filter="
    assert result.v9.startswith(prefix)
    from urllib.parse import unquote

    data = json.loads(unquote(result.v9[len(prefix):]))
    assert data == {"_or": [{f"f{i}": {"_eq": str(i)}} for i in range(25)]}
    assert any("JSON filter" in n.text for n in result.notes)


BAD = [
    ("", "empty"),
    ("/items/articles", "looks like a v9 path already"),
    ("/foo/bar/baz", "is not a v8 API path"),
    (I + "filter[title][_eq]=a", "is v9 syntax"),
    (I + "filter[_or][0][title][eq]=a", "is v9 syntax"),
    (I + "filter={\"title\":{\"_eq\":\"a\"}}", "JSON filter"),
    (I + "filter[title][regex]=a", "unknown v8 filter operator 'regex'"),
    (I + "filter[title][logical]=xor&filter[title][eq]=a", "logical"),
    (I + "filter[title][logical]=or", "has no operator"),
    (I + "filter[rating][between]=1,2,3", "needs two values"),
    (I + "filter[id][=]=1", "%3D"),
    (I + "deep[translations][_limit]=1", "v9 query parameter"),
    (I + "limit=ten", "not an integer"),
    (I + "meta=everything", "not a v8 meta value"),
    ("/_/mail", "Flow"),
    ("/_/scim/v2/Users", "no SCIM"),
    ("/_/types", "no v9 form"),
    ("/server/projects", "one project"),
    ("/_/auth/whoami", "not a v8 auth path"),
    ("/_/items", "names its collection"),
    ("/_/items/directus_user_sessions", "no v9 endpoint"),
    ("ftp://example.com/_/items/a", "not an HTTP URL"),
]


@pytest.mark.parametrize("v8,fragment", BAD, ids=[b[0][:50] or "empty" for b in BAD])
def test_not_a_v8_query(v8: str, fragment: str) -> None:
    with pytest.raises(NotAV8Query) as raised:
        rewrite_query(v8)
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_cli_prints_the_v9_url_and_the_notes() -> None:
    done = run_cli("v8", "rewrite-query", I + "filter[author.name][like]=Ann&q=alps&sort=?,title&limit=5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "/items/articles?filter[author][name][_contains]=Ann&search=alps&sort=title&limit=5\n"
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("directus-ops: warning: v9 has no random sort") for line in lines), lines
    assert any(line.startswith("directus-ops: note: v8 matched like/contains") for line in lines), lines


def test_cli_without_notes_prints_only_the_url() -> None:
    done = run_cli("v8", "rewrite-query", "/_/items/articles/1")
    assert (done.returncode, done.stdout, done.stderr) == (0, "/items/articles/1\n", "")


@pytest.mark.parametrize("bad,fragment", [("/items/articles?filter[a][_eq]=1", "looks like a v9 path already"),
                                          (I + "filter[a][regex]=1", "unknown v8 filter operator"),
                                          ("/_/mail", "no v9 form")])
def test_cli_refuses_what_is_not_a_v8_query(bad: str, fragment: str) -> None:
    done = run_cli("v8", "rewrite-query", bad)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: ") and fragment in lines[0], lines
