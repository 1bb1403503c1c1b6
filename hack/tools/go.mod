module github.com/vpc-route-publisher/vpc-route-publisher/hack/tools

go 1.26.8

require github.com/golangci/golangci-lint/v2 v2.15.0 // indirect
