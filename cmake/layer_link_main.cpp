// Linked with one whole layer (cmake/layers.cmake): it builds only if every symbol the
// layer uses comes from the layer itself or from the layers below it.
int main() {
  return 0;
}
