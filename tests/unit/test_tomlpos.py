"""farm.tomlpos: key path -> line of a TOML text."""

import time
import tomllib

from farm.tomlpos import line_of, locate


def test_tables_keys_and_arrays_of_tables():
    text = (
        "# a comment = with [brackets]\n"      # 1
        "[global]\n"                             # 2
        "workers = 2   # trailing comment\n"    # 3
        "\n"                                     # 4
        "[backends.app]\n"                       # 5
        "balance = \"roundrobin\"\n"             # 6
        "[[backends.app.servers]]\n"             # 7
        "name = \"s1\"\n"                        # 8
        "address = \"10.0.0.1:80\"\n"            # 9
        "[[backends.app.servers]]\n"             # 10
        "name = \"s2\"\n"                        # 11
    )
    pos = locate(text)
    assert pos[("global",)] == 2
    assert pos[("global", "workers")] == 3
    assert pos[("backends",)] == 5
    assert pos[("backends", "app")] == 5
    assert pos[("backends", "app", "balance")] == 6
    assert pos[("backends", "app", "servers")] == 7
    assert pos[("backends", "app", "servers", 0)] == 7
    assert pos[("backends", "app", "servers", 0, "name")] == 8
    assert pos[("backends", "app", "servers", 0, "address")] == 9
    assert pos[("backends", "app", "servers", 1)] == 10
    assert pos[("backends", "app", "servers", 1, "name")] == 11
    assert ("backends", "app", "servers", 1, "address") not in pos


def test_implied_tables_map_to_first_appearance():
    text = (
        "[frontends.www.acl]\n"    # 1
        "api = \"path_beg /api\"\n"  # 2
        "[frontends.www]\n"        # 3
        "bind = \":80\"\n"         # 4
    )
    pos = locate(text)
    assert pos[("frontends",)] == 1
    assert pos[("frontends", "www")] == 1
    assert pos[("frontends", "www", "acl")] == 1
    assert pos[("frontends", "www", "acl", "api")] == 2
    assert pos[("frontends", "www", "bind")] == 4


def test_nested_arrays_of_tables_use_last_element():
    text = (
        "[[a]]\n"        # 1
        "x = 1\n"        # 2
        "[[a.b]]\n"      # 3
        "y = 1\n"        # 4
        "[[a]]\n"        # 5
        "[[a.b]]\n"      # 6
        "[[a.b]]\n"      # 7
        "z = 3\n"        # 8
        "[a.c]\n"        # 9
        "w = 4\n"        # 10
    )
    tomllib.loads(text)  # the fixture itself is valid TOML
    pos = locate(text)
    assert pos[("a", 0, "b", 0, "y")] == 4
    assert pos[("a", 1)] == 5
    assert pos[("a", 1, "b", 0)] == 6
    assert pos[("a", 1, "b", 1)] == 7
    assert pos[("a", 1, "b", 1, "z")] == 8
    assert pos[("a", 1, "c", "w")] == 10


def test_dotted_quoted_keys_and_whitespace_in_headers():
    text = (
        "[ frontends . \"my.www\" ]\n"          # 1
        "timeout.client = \"5s\"\n"              # 2
        "'errorfiles' . \"503\" = \"x\"\n"       # 3
        "\"a\\u0062c\" = 1\n"                    # 4
        "[[ 'lit' . arr ]]\n"                    # 5
        "k = 1\n"                                # 6
    )
    assert tomllib.loads(text)["frontends"]["my.www"]["abc"] == 1
    pos = locate(text)
    assert pos[("frontends", "my.www")] == 1
    assert pos[("frontends", "my.www", "timeout")] == 2
    assert pos[("frontends", "my.www", "timeout", "client")] == 2
    assert pos[("frontends", "my.www", "errorfiles", "503")] == 3
    assert pos[("frontends", "my.www", "abc")] == 4
    assert pos[("lit", "arr", 0, "k")] == 6


def test_multiline_strings_do_not_define_keys():
    text = (
        'a = """\n'                 # 1
        "fake = 1\n"                # 2
        "[not.a.table]\n"           # 3
        'still \\""" inside\n'      # 4  escaped quotes
        'end""""\n'                 # 5  closes with one extra quote
        "b = '''\n"                 # 6
        "[[nope]]\n"                # 7
        "x = 2'''''\n"              # 8
        "c = 3\n"                   # 9
    )
    data = tomllib.loads(text)
    assert data["a"].endswith('end"') and data["b"].endswith("x = 2''")
    pos = locate(text)
    assert pos == {("a",): 1, ("b",): 6, ("c",): 9}


def test_multiline_arrays_and_inline_tables():
    text = (
        "[frontends.www]\n"                           # 1
        "bind = [\n"                                  # 2
        "  \"0.0.0.0:80\",  # first\n"               # 3
        "  # a comment line, ] = [\n"                 # 4
        "  \"[::]:80\",\n"                            # 5
        "]\n"                                         # 6
        "[backends.app]\n"                            # 7
        "servers = [\n"                               # 8
        "  { name = \"s1\", address = \"a:1\" },\n"  # 9
        "  { name = \"s2\",\n"                        # 10
        "    address = \"b:1\" },\n"                  # 11
        "]\n"                                         # 12
        "check = { type = \"http\", t.x = 1 }\n"      # 13
        "after = 1\n"                                 # 14
    )
    pos = locate(text)
    assert pos[("frontends", "www", "bind")] == 2
    assert pos[("frontends", "www", "bind", 0)] == 3
    assert pos[("frontends", "www", "bind", 1)] == 5
    assert pos[("backends", "app", "servers", 0)] == 9
    assert pos[("backends", "app", "servers", 0, "address")] == 9
    assert pos[("backends", "app", "servers", 1, "name")] == 10
    assert pos[("backends", "app", "servers", 1, "address")] == 11
    assert pos[("backends", "app", "check", "type")] == 13
    assert pos[("backends", "app", "check", "t", "x")] == 13
    assert pos[("backends", "app", "after")] == 14


def test_values_with_special_characters():
    text = (
        "a = \"x # not a comment ] } = ,\"\n"   # 1
        "b = 'c:\\path\\'\n"                     # 2
        "c = 1979-05-27 07:32:00Z\n"             # 3
        "d = [[1, 2], [\"]\"]]\n"                # 4
        "e = \"\\\"quoted\\\"\"\n"               # 5
        "f = -inf\n"                             # 6
    )
    tomllib.loads(text)
    pos = locate(text)
    assert [pos[(k,)] for k in "abcdef"] == [1, 2, 3, 4, 5, 6]
    assert pos[("d", 1, 0)] == 4


def test_crlf_line_endings():
    text = "[global]\r\nworkers = 2\r\n\r\n[log]\r\nlevel = \"info\"\r\n"
    pos = locate(text)
    assert pos[("global", "workers")] == 2
    assert pos[("log", "level")] == 5


def test_invalid_text_does_not_raise():
    text = "[broken\nkey = \nx = 1\n= 3\n\"unterminated = 2\ny = 4\n"
    pos = locate(text)
    assert pos[("x",)] == 3
    assert pos[("y",)] == 6


def test_line_of_walks_up_to_nearest_known_prefix():
    pos = {("backends",): 3, ("backends", "app"): 3, ("backends", "app", "servers", 0): 7}
    assert line_of(pos, ("backends", "app", "servers", 0, "weight")) == 7
    assert line_of(pos, ["backends", "app", "timeout", "connect"]) == 3
    assert line_of(pos, ("frontends", "www")) == 0
    assert line_of(pos, ()) == 0


def test_large_file_is_fast():
    chunks = []
    for i in range(500):
        chunks.append(f'[[backends.app.servers]]\nname = "s{i}"\naddress = "10.0.{i // 250}.{i % 250}:80"\n'
                      f'weight = 10\n# comment\nbackup = false\ncheck = true\nmaxconn = 100\n'
                      f'slowstart = "10s"\ncookie = "c{i}"\n')
    text = "".join(chunks)
    assert text.count("\n") == 5000
    start = time.perf_counter()
    pos = locate(text)
    assert time.perf_counter() - start < 1.0
    assert pos[("backends", "app", "servers", 499, "cookie")] == 5000
