package datatype

func init() {
	register(Type{
		Name:        "npm_package_file",
		Description: "npm package tarballs, scoped or not",
		Patterns:    []string{`^npm/.+\.tgz$`},
		Examples: []string{
			"npm/left-pad/-/left-pad-1.3.0.tgz",
			"npm/@scope/util/-/util-2.0.1.tgz",
		},
	})
}
