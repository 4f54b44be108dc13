// admin: a second program of the workspace (a command-line tool). With two main packages the go pack cannot
// guess which one is the app: unik.yaml's `main:` chooses.
package main

import (
	"fmt"
	"os"

	"example.com/greet"
)

func main() {
	name := "admin"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Println(greet.Hello(name))
}
