package datatype

func init() {
	register(Type{
		Name:        "maven_package_file",
		Description: "Maven artifacts, POMs, metadata and their signature/checksum files",
		Patterns:    []string{`^maven/.+`},
		Examples: []string{
			"maven/com/example/app/1.0.0/app-1.0.0.jar",
			"maven/com/example/app/1.0.0/app-1.0.0.pom",
			"maven/com/example/app/maven-metadata.xml",
		},
	})
}
