# Example: Kubernetes API egress for agents. Read-only everywhere; writes only in the "sandbox"
# namespace; exec/attach/portforward (verb create on those subresources) never.
package chaperone.examples.kubernetes

import rego.v1

read_verbs := {"get", "list", "watch"}

connect_subresources := {"exec", "attach", "portforward"}

default decision := {"allowed": false, "http_status": 403, "reason": "not allowed"}

k := input.protocol

decision := {"allowed": true, "reason": "read-only"} if {
	k.name == "kubernetes"
	k.verb in read_verbs
	not k.subresource in connect_subresources
}

decision := {"allowed": true, "reason": "write in sandbox"} if {
	k.name == "kubernetes"
	not k.verb in read_verbs
	k.namespace == "sandbox"
	not k.subresource in connect_subresources
}

decision := {"allowed": false, "http_status": 403, "reason": sprintf("%s %s is not allowed for agents", [k.verb, k.subresource])} if {
	k.name == "kubernetes"
	k.subresource in connect_subresources
}
