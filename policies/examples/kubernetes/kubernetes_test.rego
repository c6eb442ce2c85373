package chaperone.examples.kubernetes_test

import rego.v1

import data.chaperone.examples.kubernetes as kube

r(verb, ns, sub) := {"protocol": {"name": "kubernetes", "verb": verb, "namespace": ns, "resource": "pods", "subresource": sub}}

test_reads_anywhere if kube.decision.allowed with input as r("list", "prod", null)

test_writes_only_in_sandbox if {
	kube.decision.allowed with input as r("delete", "sandbox", null)
	d := kube.decision with input as r("delete", "prod", null)
	not d.allowed
}

test_exec_never if {
	d := kube.decision with input as r("create", "sandbox", "exec")
	not d.allowed
	d.reason == "create exec is not allowed for agents"
}
