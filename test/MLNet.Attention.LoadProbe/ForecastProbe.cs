using Microsoft.ML;
using Microsoft.ML.Data;
using MLNet.Attention.Forecasting;

namespace MLNet.Attention.LoadProbe;

/// <summary>Fresh-process check for forecasting models: load the zip, forecast after a CSV series (Time,A,B,C), print bits.</summary>
internal static class ForecastProbe
{
    private sealed class Row
    {
        [LoadColumn(0)] public DateTime Time { get; set; }
        [LoadColumn(1)] public float A { get; set; }
        [LoadColumn(2)] public float B { get; set; }
        [LoadColumn(3)] public float C { get; set; }
    }

    public static int Run(string modelPath, string csvPath)
    {
        try
        {
            var ml = new MLContext();
            using var model = (ForecastingModel)ml.Model.Load(modelPath, out _);
            Console.WriteLine("TYPE " + model.GetType().FullName);
            // libtorch's reductions depend on the thread count; the caller compares at the same count.
            Console.WriteLine("THREADS " + TorchSharp.torch.get_num_threads());
            var series = ml.Data.LoadFromTextFile<Row>(csvPath, separatorChar: ',', hasHeader: true);
            var forecast = model.Forecast(series);
            Console.WriteLine("ROW " + string.Join(" ", forecast.Values.Select(v => BitConverter.SingleToInt32Bits(v).ToString("x8"))));
            Console.WriteLine("DONE");
            return 0;
        }
        catch (Exception ex)
        {
            return ReportFailure(ex);
        }
    }

    /// <summary>Prints every exception of the chain as "ERROR type: message" and returns the probe's failure code.</summary>
    internal static int ReportFailure(Exception ex)
    {
        for (var e = ex; e != null; e = e.InnerException)
            Console.WriteLine($"ERROR {e.GetType().FullName}: {e.Message}");
        return 3;
    }
}
