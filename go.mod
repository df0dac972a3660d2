module manager

go 1.26
