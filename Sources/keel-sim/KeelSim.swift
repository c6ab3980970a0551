@main
enum KeelSim {
    static func main() {}
}
