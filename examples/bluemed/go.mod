module bluemed

go 1.26
