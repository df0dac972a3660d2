module flush-manager

go 1.26
