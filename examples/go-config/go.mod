module example.com/go-config

go 1.22
