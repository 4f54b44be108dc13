// Package greet is the workspace's shared library: both programs use it.
package greet

import "fmt"

// Hello is the greeting both the API and the admin tool print.
func Hello(name string) string { return fmt.Sprintf("hello, %s", name) }
