namespace MLNet.Attention.WholeSlide;

/// <summary>The package's assembly marker (slide reading, tiling, tile featurizers and heatmaps live beside it).</summary>
internal static class WholeSlideAssembly
{
}
