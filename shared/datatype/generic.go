package datatype

func init() {
	register(Type{
		Name:        "generic_package_file",
		Description: "Generic package files of any name",
		Patterns:    []string{`^generic/.+`},
		Examples: []string{
			"generic/my-tool/1.2.0/my-tool-linux-amd64.tar.gz",
			"generic/odd names/v1/file with spaces+plus%percent ü.bin",
		},
	})
}
