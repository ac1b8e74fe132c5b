package datatype

func init() {
	register(Type{
		Name:        "nuget_package_file",
		Description: "NuGet packages (.nupkg)",
		Patterns:    []string{`^nuget/.+\.nupkg$`},
		Examples:    []string{"nuget/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.nupkg"},
	})
}
