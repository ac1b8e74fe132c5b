package datatype

func init() {
	register(Type{
		Name:        "rubygems_package_file",
		Description: "RubyGems gems (.gem)",
		Patterns:    []string{`^rubygems/.+\.gem$`},
		Examples:    []string{"rubygems/rails/7.1.0/rails-7.1.0.gem"},
	})
}
