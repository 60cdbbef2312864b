// kstatus prints what sigs.k8s.io/cli-utils' kstatus (the library behind Flux's health checks
// and cli-utils' waiters) computes for one Kubernetes object, read as JSON from stdin: one line,
// the status (Current, InProgress, Failed, ...), a tab, and kstatus' message.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(raw); err != nil {
		fail("stdin is not a Kubernetes object in JSON: %v", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		fail("%v", err)
	}
	fmt.Printf("%s\t%s\n", result.Status, result.Message)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}
