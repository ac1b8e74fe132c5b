package datatype

func init() {
	register(Type{
		Name:        "conan_package_file",
		Description: "Conan recipe and package files (conanfile.py, conanmanifest.txt, conan_package.tgz, ...)",
		Patterns:    []string{`^conan/.+`},
		Examples: []string{
			"conan/zlib/1.3.1/_/_/0/export/conanfile.py",
			"conan/zlib/1.3.1/_/_/0/package/4f2a/0/conan_package.tgz",
		},
	})
}
