package datatype

func init() {
	register(Type{
		Name:        "pypi_package_file",
		Description: "PyPI wheels and source distributions",
		Patterns:    []string{`^pypi/.+\.(?:whl|tar\.gz|zip|egg)$`},
		Examples: []string{
			"pypi/requests/2.32.3/requests-2.32.3-py3-none-any.whl",
			"pypi/requests/2.32.3/requests-2.32.3.tar.gz",
		},
	})
}
