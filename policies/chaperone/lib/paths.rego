# Paths in tool arguments. within(path, prefix) answers "is `path` the directory `prefix` or inside
# it?" for absolute POSIX paths written plainly, and is false — never a guess — for anything a tool
# could resolve elsewhere: a dot segment (`.`, `..`), a percent sign (an encoding the tool may decode),
# a backslash (a separator on Windows), a control character, a relative path, a non-string.
# Repeated and trailing slashes are normalised away (POSIX reads `/a//b/` as `/a/b`), and paths are
# compared by whole segments: `/srv/public` does not contain `/srv/public-2`.
# Differentially tested (opa eval, the WebAssembly build, a reference model): test/unit/policy-path-within.test.ts.
package chaperone.lib.paths

import rego.v1

default within(_, _) := false

within(path, prefix) if {
	plain(path)
	plain(prefix)
	p := segments(path)
	q := segments(prefix)
	count(q) <= count(p)
	array.slice(p, 0, count(q)) == q
}

plain(s) if {
	is_string(s)
	startswith(s, "/")
	not regex.match(`[%\\\x00-\x1f\x7f]`, s)
	not has_dot_segment(s)
}

has_dot_segment(s) if {
	some seg in split(s, "/")
	seg in {".", ".."}
}

segments(s) := [seg | some seg in split(s, "/"); seg != ""]
