// Command etcd is the upstream etcd server main, unchanged, for the tokenwarden test control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
