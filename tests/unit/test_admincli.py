"""The runtime API's language (farm/admincli.py): help, the answer to an
unknown command, error marks."""

from __future__ import annotations

from farm import admincli

TAIL = [
    "  help [<command>]                        : list matching or all commands",
    "  prompt                                  : toggle interactive mode with prompt",
    "  quit                                    : disconnect",
]


def listed(answer: str) -> list[str]:
    """The commands an answer lists (their first words), help/prompt/quit apart."""
    lines = answer.splitlines()
    assert lines[-3:] == TAIL
    return [line.split("  ")[1].split(" [")[0].split(" <")[0].strip() for line in lines[1:-3]]


def test_a_typo_suggests_the_closest_command_only():
    answer = admincli.usage("shwo stat".split())
    assert answer.splitlines()[0] == ("Unknown command, but maybe one of the following ones "
                                      "is a better match:")
    assert listed(answer) == ["show stat"]
    assert listed(admincli.usage(["relaod"])) == ["reload"]
    assert listed(admincli.usage("show sesion".split())) == ["show sess"]
    assert listed(admincli.usage("get wieght be/s1".split())) == ["get weight"]
    assert listed(admincli.usage("set servr be/s1 state ready".split())) == ["set server"]


def test_matching_words_list_the_commands_that_start_with_them():
    assert listed(admincli.usage(["show"])) == [
        "show backend", "show info", "show peers", "show servers state", "show sess", "show ssl cert",
        "show stat", "show table"]
    assert listed(admincli.usage(["disable"])) == ["disable server"]
    assert listed(admincli.usage("show servers nosuch".split())) == ["show servers state"]


def test_nothing_close_lists_every_command():
    answer = admincli.usage(["frobnicate"])
    assert len(listed(answer)) == len(admincli.COMMANDS)
    assert admincli.usage([]).startswith("Unknown command. Please enter one of the following")


def test_help_lists_all_or_the_matching_commands():
    answer = admincli.usage([], help_asked=True)
    assert answer.startswith("The following commands are valid at this level:\n")
    assert len(listed(answer)) == len(admincli.COMMANDS)
    assert listed(admincli.usage(["set"], help_asked=True)) == [
        "set server", "set severity-output", "set table", "set timeout cli", "set weight"]


def test_usage_lines_keep_haproxys_layout():
    line = admincli.Command(("show", "backend"), "show backend", "list backends").line()
    assert line == "  show backend                            : list backends\n"
    assert line.index(":") == 42


def test_marks_round_trip_and_only_errors_count():
    for mode in ("number", "string"):
        marked = admincli.mark("No such server.\n", admincli.LOG_ERR, mode)
        severity, text = admincli.unmark(marked)
        assert text == "No such server.\n" and admincli.is_error(severity)
    assert admincli.mark("No such server.\n", admincli.LOG_ERR, "none") == "No such server.\n"
    assert admincli.unmark("1 (initial 1)\n") == (None, "1 (initial 1)\n")
    assert not admincli.is_error(admincli.unmark("[6]: Unknown command\n")[0])   # HAProxy's info
    assert admincli.unmark("[3]: x") == (3, "x")
    # a mark is only at the start of an answer
    assert admincli.unmark("a\n[3]: b\n") == (None, "a\n[3]: b\n")

