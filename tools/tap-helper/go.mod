module virtflow/tools/tap-helper

go 1.24
