# Bench case "allow-all": the smallest policy, so the figures measure the Check path itself
# (gRPC, input document, one evaluation) and nothing else.
package envoy.authz

default allow := false

allow := true
