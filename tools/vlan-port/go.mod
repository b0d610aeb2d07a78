module virtflow/tools/vlan-port

go 1.24
