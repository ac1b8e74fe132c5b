package datatype

func init() {
	register(Type{
		Name:        "nuget_symbol_file",
		Description: "NuGet symbol packages (.snupkg) and PDB files",
		Patterns:    []string{`^nuget/.+\.(?:snupkg|pdb)$`},
		Examples: []string{
			"nuget/newtonsoft.json/13.0.3/newtonsoft.json.13.0.3.snupkg",
			"nuget/symbols/Newtonsoft.Json.pdb/6a1b2c3d4e5f60718293a4b5c6d7e8f9FFFFFFFF/Newtonsoft.Json.pdb",
		},
	})
}
