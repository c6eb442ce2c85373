package chaperone.lib.paths_test

import rego.v1

import data.chaperone.lib.paths

test_inside if {
	paths.within("/srv/public/a.txt", "/srv/public/")
	paths.within("/srv/public/a/b/c", "/srv/public")
	paths.within("/srv/public", "/srv/public/")
	paths.within("/srv//public///a.txt/", "/srv/public")
	paths.within("/anything", "/")
}

test_outside if {
	not paths.within("/etc/passwd", "/srv/public/")
	not paths.within("/srv/public-2/a", "/srv/public")
	not paths.within("/srv", "/srv/public")
}

test_refused_spellings if {
	not paths.within("/srv/public/../../etc/passwd", "/srv/public/")
	not paths.within("/srv/public/./a", "/srv/public/")
	not paths.within("/srv/public/%2e%2e/etc/passwd", "/srv/public/")
	not paths.within("/srv/public/a%2Fb", "/srv/public/")
	not paths.within("/srv/public\\..\\etc", "/srv/public/")
	not paths.within("/srv/public/a\n.txt", "/srv/public/")
	not paths.within("srv/public/a", "/srv/public/")
	not paths.within("", "/srv/public/")
	not paths.within(null, "/srv/public/")
	not paths.within(["/srv/public/a"], "/srv/public/")
	not paths.within("/srv/public/a", "/srv/../srv/public")
}

test_dots_inside_names_are_names if {
	paths.within("/srv/public/..a/.b/c..", "/srv/public")
}
