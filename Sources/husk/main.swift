import ArgumentParser

Husk.main()
